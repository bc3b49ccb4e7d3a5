"""Oracle processes that restart in a fraction of the time: forked from a pre-imported
launcher instead of exec'd as ``python -m oracle run``.

The SIGKILL campaigns (tests/oracle/test_soak_crash.py) restart oracles hundreds of times;
each ``python -m oracle run`` spends about 1.5 CPU-seconds importing web3, SQLAlchemy,
numpy and the oracle before it does anything, and three of them restarting together on two
shared cores took 5 to 15 s each time. A `WarmOracleProcess` is started by a
`multiprocessing` forkserver that imported all of that once: the child sets the oracle's
environment and log file, then runs the very command ``oracle run`` runs
(`oracle.cli.main(["run"])`), in its own process, with its own verification forkserver
(forked rather than exec'd: `_fork_verification_server`), database connection and HTTP
server. What differs from ``python -m oracle run`` is only the interpreter's start and the
imports; a SIGKILL of it loses exactly what killing the other would (its memory, its
connections, its child processes' parent).

`devchain.oracles.OracleProcess` stays the way the other tests (and the make-test crash
test) start oracles.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from devchain.anvil import _die_with_parent
from devchain.contracts import Market
from devchain.oracles import OracleProcess, oracle_set
from oracle.settings import REPO_ROOT

PRELOAD = ["tests.oracle.warm_oracles", "oracle.cli", "oracle.service"]
_context: list[BaseContext] = []


def warm_context() -> BaseContext:
    """The forkserver context the oracles start from (its preloading happens once per test
    process; if something else started this process's forkserver first, the children import
    the oracle themselves: slower, the same otherwise)."""
    if not _context:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context.append(ctx)
    return _context[0]


def _oracle_main(env: dict[str, str], log_path: str) -> None:
    """In the forked child: the oracle's environment, its log file as stdout and stderr,
    then ``oracle run``."""
    _die_with_parent()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO_ROOT)
    _fork_verification_server()
    from oracle.cli import main

    try:
        main(["run"], prog_name="oracle")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _fork_verification_server() -> None:
    """Starts this process's multiprocessing forkserver (where the oracle's `VerifierPool`
    forks its verification workers) by forking this still single-threaded process, instead
    of exec'ing a new interpreter that imports the verifier again (2 to 3 s of a restart on
    loaded cores). It is what `multiprocessing.forkserver.ForkServer.ensure_running` does
    (CPython 3.11), with `os.fork` in place of `spawnv_passfds`: the server runs the same
    `forkserver.main`, and the pool finds it running."""
    from multiprocessing import connection, forkserver, resource_tracker

    server: Any = forkserver._forkserver
    resource_tracker.ensure_running()
    if server._forkserver_pid is not None:
        return
    with socket.socket(socket.AF_UNIX) as listener:
        address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
        listener.bind(address)
        os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the server: until every holder of alive_w is gone
            try:
                os.close(alive_w)
                forkserver.main(listener.fileno(), alive_r, [])
            finally:
                os._exit(0)
        os.close(alive_r)
    server._forkserver_address = address
    server._forkserver_alive_fd = alive_w
    server._forkserver_pid = pid


class WarmOracleProcess(OracleProcess):
    """An `OracleProcess` forked from the warm launcher (`start`, `running`, `kill` and
    `stop` as there; `exitcode` as a Popen's returncode)."""

    proc: BaseProcess | None = None

    def start(self) -> WarmOracleProcess:
        assert not self.running()
        proc = warm_context().Process(  # type: ignore[attr-defined]
            target=_oracle_main,
            args=(self.environment(), str(self.log_path)),
            name=self.name,
            daemon=False,  # it starts its own verification workers
        )
        proc.start()
        self.proc = proc
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def exitcode(self) -> int | None:
        """None while it runs; -9 after a SIGKILL (as `subprocess` says it)."""
        return None if self.proc is None else self.proc.exitcode

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.proc is not None and self.proc.is_alive():
            assert self.proc.pid is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.join()

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=15)
            if self.proc.is_alive():
                self.kill()


def warm_oracle_set(
    m: Market,
    folder: Path,
    rpc_url: str,
    env: dict[str, str] | None = None,
    per_oracle_env: list[dict[str, str]] | None = None,
) -> list[WarmOracleProcess]:
    """`devchain.oracles.oracle_set` with warm processes: one per oracle key of the market,
    each peered with the others."""
    made = oracle_set(
        m, folder, rpc_url, env=env, per_oracle_env=per_oracle_env, process=WarmOracleProcess
    )
    return [p for p in made if isinstance(p, WarmOracleProcess)]

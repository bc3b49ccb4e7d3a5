"""Lives of the provider agent process for the SIGKILL campaign (tests/agent/test_soak.py).

A life is one `python -m neurotoken.provider agent ... run` process, in a session of its own
(its process group is killed with it), writing to a log file of its own. Starting Python and
importing web3, aiohttp and the rest takes 1.5 to 5 s on the two shared cores, which would
make hundreds of kills cost most of an hour; so most lives are forked from a launcher that
imported the agent's modules once (`python -m tests.agent.agent_lives`, started by `Lives`)
and run the same command line through the same entry point (`neurotoken.provider.cli.main`).
What differs from `python -m neurotoken.provider` is only the interpreter's start and the
imports. `cold=True` starts one the ordinary way (a fresh interpreter, import time included).

The launcher is this campaign's own process, not `multiprocessing`'s fork server: that one is
one per test process, and the oracle campaigns preload theirs (tests/oracle/warm_oracles.py);
whichever started first under `make soak` would leave the other importing everything at
every start.

The launcher reads one JSON request a line on stdin ({"life", "argv", "env", "log"}), forks,
and answers ``started LIFE PID``; when a life ends it says ``ended LIFE CODE`` (CODE as
`subprocess` gives it: -9 for SIGKILL). Lives are named by their number, not their pid: over
hundreds of lives on a busy machine the kernel gives a pid out again.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from devchain.anvil import _die_with_parent
from oracle.settings import REPO_ROOT


def _run_cli(argv: list[str], env: dict[str, str], log: str) -> int:
    """In the forked child: a session of its own, the log as stdout and stderr, the life's
    environment, then the agent's command line as `python -m neurotoken.provider` runs it
    (SIGTERMed if the launcher dies: an interrupted test run leaves no agent behind)."""
    os.setsid()
    _die_with_parent()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.clear()
    os.environ.update(env)
    from neurotoken.provider.cli import main

    try:
        main(argv, prog_name="python -m neurotoken.provider")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _launcher() -> None:
    """`python -m tests.agent.agent_lives`: imports the agent once, then forks lives on
    request (see the module docstring) until stdin closes."""
    import neurotoken.provider.cli  # noqa: F401  (what every life would import)

    out = sys.stdout
    lives: dict[int, int] = {}  # pid -> life number, while it runs (a pid is unique then)
    stdin = sys.stdin.fileno()
    pending = b""
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.05)
        if readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        code = _run_cli(request["argv"], request["env"], request["log"])
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                lives[pid] = request["life"]
                out.write(f"started {request['life']} {pid}\n")
                out.flush()
        for pid in list(lives):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                number = lives.pop(pid)
                out.write(f"ended {number} {os.waitstatus_to_exitcode(status)}\n")
                out.flush()


class Launcher:
    """The launcher process, and what it said about each life."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.agent.agent_lives"], cwd=REPO_ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=_die_with_parent,
        )  # fmt: skip
        self.lock = threading.Lock()
        self.pids: dict[int, int] = {}  # life number -> pid
        self.started_event = threading.Condition(self.lock)
        self.codes: dict[int, int] = {}  # life number -> exit code
        self.ended = threading.Condition(self.lock)
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            word, number, value = raw.decode().split()
            with self.lock:
                if word == "started":
                    self.pids[int(number)] = int(value)
                    self.started_event.notify_all()
                else:
                    self.codes[int(number)] = int(value)
                    self.ended.notify_all()

    def fork(self, number: int, argv: list[str], env: Mapping[str, str], log: Path) -> int:
        """Starts life `number` (unique); its pid."""
        assert self.process.stdin is not None and self.process.poll() is None
        with self.lock:
            request = {"life": number, "argv": argv, "env": dict(env), "log": str(log)}
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            # the launcher imports the agent before its first answer: a minute at worst
            if not self.started_event.wait_for(lambda: number in self.pids, timeout=120):
                raise TimeoutError("the agent launcher did not start a life")
            return self.pids[number]

    def code(self, number: int, timeout: float = 0) -> int | None:
        """Life `number`'s exit code, once it has ended (waiting up to `timeout` s)."""
        with self.lock:
            self.ended.wait_for(lambda: number in self.codes, timeout=timeout)
            return self.codes.get(number)

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Life:
    """One agent process: forked by the launcher, or a fresh interpreter (`cold`)."""

    def __init__(
        self,
        launcher: Launcher | None,
        number: int,
        argv: list[str],
        env: Mapping[str, str],
        log: Path,
        cold: bool,
    ) -> None:
        self.log = log
        self.number = number
        self.cold = cold
        self.started = time.monotonic()
        self._launcher = launcher
        self._popen: subprocess.Popen[bytes] | None = None
        if cold:
            with log.open("ab") as out:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", "neurotoken.provider", *argv],
                    cwd=REPO_ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            self.pid = self._popen.pid
        else:
            assert launcher is not None
            self.pid = launcher.fork(number, argv, env, log)

    @property
    def exitcode(self) -> int | None:
        """None while it runs; -N after signal N (as `subprocess` says it)."""
        if self._popen is not None:
            return self._popen.poll()
        assert self._launcher is not None
        return self._launcher.code(self.number)

    def alive(self) -> bool:
        return self.exitcode is None

    def wait(self, timeout: float) -> int | None:
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout)
            return self._popen.poll()
        assert self._launcher is not None
        return self._launcher.code(self.number, timeout)

    def signal_group(self, sig: int) -> None:
        """Sends `sig` to the life's whole process group, while the life runs (not reaped,
        its pid is still its own: after that the kernel may give the number to anyone)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Lives:
    """Starts lives (the launcher, which imports the agent once, with the first)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.launcher: Launcher | None = None
        self.started: list[Life] = []

    def start(self, argv: list[str], env: Mapping[str, str], cold: bool = False) -> Life:
        log = self.folder / f"life-{len(self.started) + 1:04d}.log"
        if not cold and self.launcher is None:
            self.launcher = Launcher()
        life = Life(self.launcher, len(self.started) + 1, argv, env, log, cold)
        self.started.append(life)
        return life

    def close(self) -> None:
        """SIGKILLs every life's group that may still run (a test that failed midway), then
        ends the launcher."""
        for life in self.started:
            if life.alive():
                life.signal_group(signal.SIGKILL)
                life.wait(10)
        if self.launcher is not None:
            self.launcher.close()


if __name__ == "__main__":
    _launcher()

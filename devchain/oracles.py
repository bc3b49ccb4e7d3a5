"""The oracles of the dev chain: ``python -m oracle run`` as a child process
(`OracleProcess`), a set of them peered with each other (`oracle_set`), and a context that
starts and always stops them (`running`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import HexStr

from devchain.anvil import _die_with_parent
from devchain.contracts import Market
from neurotoken.chain.keystore import write_keystore
from neurotoken.ports import free_port, free_ports
from oracle.settings import REPO_ROOT


def log_events(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects among a process log's lines (the oracle's and the agent's structured
    events); other lines and lines that do not parse (one cut by a SIGKILL) are skipped."""
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            yield item


@dataclass
class OracleProcess:
    """``python -m oracle run`` as a child process with its own key, database and port."""

    name: str
    folder: Path
    rpc_url: str
    market: str
    private_key: str | None
    peers: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keystore: Path | None = None
        if self.private_key is not None:
            self.keystore = self.folder / "keystore.json"
            if not self.keystore.exists():
                write_keystore(
                    self.keystore, HexStr(self.private_key), "demo-password", iterations=1024
                )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str | None:
        return None if self.private_key is None else Account.from_key(self.private_key).address

    @property
    def log_path(self) -> Path:
        return self.folder / "oracle.log"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
        env.update(
            {
                "ORACLE_RPC_URL": self.rpc_url,
                "ORACLE_MARKET": self.market,
                "ORACLE_DATABASE_URL": self.database_url
                or f"sqlite:///{self.folder / 'oracle.sqlite'}",
                "ORACLE_HTTP_PORT": str(self.port),
                "ORACLE_PEERS": ",".join(self.peers),
                "ORACLE_POLL_INTERVAL_S": "0.25",
                "ORACLE_CONFIRMATIONS": "2",
                "ORACLE_PEER_TIMEOUT_S": "2",
                "ORACLE_RETRY_BACKOFF_S": "0.5",
                "ORACLE_LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                "no_proxy": "127.0.0.1,localhost",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        if self.keystore is not None:
            env["ORACLE_KEYSTORE"] = str(self.keystore)
            env["ORACLE_PASSWORD_ENV"] = "ORACLE_TEST_PASSWORD"
            env["ORACLE_TEST_PASSWORD"] = "demo-password"
        env.update(self.env)
        return env

    def start(self) -> OracleProcess:
        assert self.process is None or self.process.poll() is not None
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oracle", "run"],
                cwd=REPO_ROOT,
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_ready(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"oracle {self.name} exited: {self.tail()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"oracle {self.name} not healthy after {timeout}s: {self.tail()}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        text = self.log_path.read_text(errors="replace")
        return [e for e in log_events(text) if name is None or e.get("event") == name]

    def tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def oracle_set(
    m: Market,
    folder: Path,
    rpc_url: str,
    keys: list[str | None] | None = None,
    env: dict[str, str] | None = None,
    per_oracle_env: list[dict[str, str]] | None = None,
    process: type[OracleProcess] | None = None,
) -> list[OracleProcess]:
    """One OracleProcess per key (default: the market's oracle keys), each peered with
    all the others; `process`: a subclass to make them with (started another way)."""
    make = process or OracleProcess
    keys = list(m.oracle_keys) if keys is None else keys
    ports = free_ports(len(keys))
    out = []
    for i, key in enumerate(keys):
        extra = dict(env or {})
        if per_oracle_env is not None:
            extra.update(per_oracle_env[i])
        out.append(
            make(
                name=f"oracle{i + 1}",
                folder=folder / f"oracle{i + 1}",
                rpc_url=rpc_url,
                market=m.market.address,
                private_key=key,
                peers=[f"http://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i],
                port=ports[i],
                env=extra,
            )
        )
    return out


@contextlib.contextmanager
def running(processes: list[OracleProcess]) -> Iterator[list[OracleProcess]]:
    """Starts the oracles and always stops them (SIGTERM, then SIGKILL)."""
    try:
        for p in processes:
            p.start()
        yield processes
    finally:
        for p in processes:
            p.stop()

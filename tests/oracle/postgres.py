"""A throwaway PostgreSQL server for the store tests: initdb a cluster in a temporary
folder, start it on a free loopback port, hand out fresh databases, stop and delete it.

The server binaries are looked up on PATH and in /usr/lib/postgresql/<version>/bin (where
Debian's `postgresql` package puts them). PostgreSQL refuses to run as root, so as root the
cluster is owned by and run as the `nobody` user (through `runuser`).

``ORACLE_TEST_POSTGRES_URL`` (a ``postgresql+psycopg://`` URL to a server whose user may
CREATE DATABASE) skips all that and uses an existing server instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from devchain.localnet import free_port


class PostgresUnavailableError(RuntimeError):
    pass


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresUnavailableError(
        f"no `{name}` on PATH or in /usr/lib/postgresql/*/bin: install Debian's `postgresql`"
    )


class TempPostgres:
    def __init__(self) -> None:
        self.external = os.environ.get("ORACLE_TEST_POSTGRES_URL")
        self.folder: Path | None = None
        self.port = 0
        self._as_user: list[str] = []

    @property
    def admin_dsn(self) -> str:
        if self.external:
            return self.external.replace("postgresql+psycopg://", "postgresql://")
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def url(self, database: str) -> str:
        if self.external:
            base, _, _ = self.external.rpartition("/")
            return f"{base}/{database}"
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise PostgresUnavailableError(
                f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-800:]}"
            )

    def start(self) -> TempPostgres:
        if self.external:
            return self
        initdb = _binary("initdb")
        self.folder = Path(tempfile.mkdtemp(prefix="oracle-pg-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailableError("running as root and no `runuser` to drop to nobody")
            shutil.chown(self.folder, user="nobody")
            os.chmod(self.folder, 0o700)
            self._as_user = [runuser, "-u", "nobody", "--"]
        data = self.folder / "data"
        self.port = free_port()
        self._run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")  # fmt: skip
        self.start_server()
        return self

    def start_server(self) -> None:
        """Starts the cluster's server (again, after `stop_server`), waiting until it is up."""
        assert self.folder is not None and not self.external
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-o", options, "-l",
                  str(self.folder / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop_server(self, mode: str = "fast") -> None:
        """Stops the server (``pg_ctl stop -m fast|immediate``), keeping the cluster: every
        client's connection is cut; `start_server` brings it back on the same port."""
        assert self.folder is not None and not self.external
        self._run(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "-w",
                  "stop")  # fmt: skip

    def create_database(self) -> str:
        name = "oracle_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.external or self.folder is None:
            return
        try:
            self._run(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                      "-w", "stop")  # fmt: skip
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

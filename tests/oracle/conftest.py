"""Oracle fixtures: databases (SQLite and a real PostgreSQL), a real anvil node with the
market deployed, a client, honest and cheating providers, and oracle processes.

Every chain here is a fresh anvil started by the fixture (not ape's), because the oracle
talks plain JSON-RPC and several tests need their own mining mode, reorgs or a proxy.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devchain.localnet import (
    Anvil,
    Client,
    Market,
    OracleProcess,
    Provider,
    oracle_set,
    setup_local_market,
)
from oracle.store import Store
from tests.oracle.postgres import PostgresUnavailableError, TempPostgres

_PG_ERROR: list[str] = []


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres | None]:
    """A PostgreSQL server for the session, or None (with the reason kept) if none starts."""
    server = TempPostgres()
    try:
        server.start()
    except PostgresUnavailableError as exc:
        _PG_ERROR.append(str(exc))
        warnings.warn(f"PostgreSQL store tests SKIPPED: {exc}", stacklevel=1)
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, or a new database on real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'oracle.sqlite'}"
    server = request.getfixturevalue("postgres")
    if server is None:
        reason = (
            "NO POSTGRESQL SERVER COULD BE STARTED - the PostgreSQL half of the store tests "
            f"did not run: {_PG_ERROR[0] if _PG_ERROR else 'unknown reason'}"
        )
        if os.environ.get("CI"):  # CI installs and starts PostgreSQL: a skip there is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    return str(server.create_database())


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


@dataclass
class Net:
    """One test's market: anvil, contracts, a client, an honest and a cheating provider."""

    anvil: Anvil
    market: Market
    client: Client
    honest: Provider
    cheat: Provider
    folder: Path
    oracles: list[OracleProcess] = field(default_factory=list)

    def oracle_set(self, rpc_url: str | None = None, **kwargs: Any) -> list[OracleProcess]:
        env = {"ORACLE_START_BLOCK": str(self.market.deploy_block), **kwargs.pop("env", {})}
        folder = self.folder / f"set{len(self.oracles)}"
        made = oracle_set(self.market, folder, rpc_url or self.anvil.url, env=env, **kwargs)
        self.oracles += made
        return made


@pytest.fixture
def make_net(tmp_path: Path) -> Iterator[Callable[..., Net]]:
    """make_net(block_time=1, mixed=True, oracles=3, threshold=2, restartable=False,
    randao_delay=0) -> Net; all torn down at the end of the test (oracles first, then
    providers, then anvil). `restartable`: the node keeps a state dump, so
    `net.anvil.restart()` brings it back; `randao_delay`: the market's (0: block-hash seeds)."""
    nets: list[Net] = []

    def _make(
        block_time: float | None = 1,
        mixed: bool = True,
        oracles: int = 3,
        threshold: int = 2,
        restartable: bool = False,
        randao_delay: int = 0,
    ) -> Net:
        anvil = Anvil(
            block_time=block_time,
            mixed=mixed,
            log_path=tmp_path / "anvil.log",
            state_path=tmp_path / "anvil-state.json" if restartable else None,
        ).start()
        try:
            market = setup_local_market(
                anvil.web3(), oracle_count=oracles, threshold=threshold, randao_delay=randao_delay
            )
            net = Net(
                anvil=anvil,
                market=market,
                client=Client(market, tmp_path / "specs"),
                honest=Provider(market, market.providers[0], tmp_path / "honest").start(),
                cheat=Provider(
                    market, market.providers[1], tmp_path / "cheat", cheat_fraction=1.0
                ).start(),
                folder=tmp_path,
            )
        except BaseException:
            anvil.stop()
            raise
        nets.append(net)
        return net

    yield _make
    for net in nets:
        for process in net.oracles:
            process.stop()
        net.honest.stop()
        net.cheat.stop()
        net.anvil.stop()

"""An oracle started while its PostgreSQL server is down waits for it (as it waits for its
node) and starts once the server is back, instead of exiting on the first refused
connection. (The campaign of PostgreSQL restarts under running oracles, some of them
SIGKILLed and restarted while the server is down, is in tests/oracle/test_soak_crash.py.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devchain.localnet import OracleProcess, wait_until
from tests.oracle.helpers import store_of
from tests.oracle.postgres import PostgresUnavailableError, TempPostgres


@pytest.fixture
def own_postgres() -> Iterator[TempPostgres]:
    """A PostgreSQL server of the test's own (it is stopped and started under the oracles,
    so not the session's)."""
    server = TempPostgres()
    if server.external:
        pytest.skip("ORACLE_TEST_POSTGRES_URL is an external server: it cannot be restarted")
    try:
        server.start()
    except PostgresUnavailableError as exc:
        pytest.fail(f"no PostgreSQL server could be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


def test_oracle_started_while_postgresql_is_down__waits__starts_when_it_is_back(
    make_net: Callable[..., Any], own_postgres: TempPostgres
) -> None:
    net = make_net()
    (oracle, *_) = net.oracle_set()
    assert isinstance(oracle, OracleProcess)
    oracle.database_url = own_postgres.create_database()
    own_postgres.stop_server("immediate")
    oracle.start()
    wait_until(lambda: bool(oracle.events("database_unavailable")), 60,
               what=f"the oracle to say the database is unavailable: {oracle.tail()}")  # fmt: skip
    assert oracle.running(), oracle.tail()
    assert not oracle.events("oracle_started")
    own_postgres.start_server()
    oracle.wait_ready(timeout=90)
    (started,) = oracle.events("oracle_started")
    assert started["schema_version"] >= 1
    assert requests.get(f"{oracle.url}/healthz", timeout=5).status_code == 200
    # it works on the database it waited for: the market's blocks are ingested
    wait_until(lambda: (store_of(oracle).cursor() or 0) >= net.market.deploy_block, 60,
               what="the oracle to ingest")  # fmt: skip
    oracle.stop()
    assert oracle.process is not None and oracle.process.returncode == 0, oracle.tail()

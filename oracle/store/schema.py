"""The store's schema: job and transaction states, the SQLAlchemy Core tables, the
migrations that create and evolve them (`SCHEMA_VERSION` is the last one), the engine
factory with its SQLite pragmas, and the hex helpers the columns are stored with."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    inspect,
    select,
    text,
    update,
)

# Job states.
SEEN = "seen"
VERIFYING = "verifying"
VERIFIED = "verified"
SIGNED = "signed"
SUBMITTED = "submitted"
SETTLED = "settled"
EXPIRED = "expired"
STATES = (SEEN, VERIFYING, VERIFIED, SIGNED, SUBMITTED, SETTLED, EXPIRED)

# Transaction states.
TX_PENDING = "pending"
TX_MINED = "mined"
TX_REVERTED = "reverted"
TX_DROPPED = "dropped"

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", Float, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(66), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("block_number", BigInteger, primary_key=True, autoincrement=False),
    Column("log_index", Integer, primary_key=True, autoincrement=False),
    Column("block_hash", String(66), nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("name", String(40), nullable=False),
    Column("job_id", BigInteger, nullable=True, index=True),
    Column("data", Text, nullable=False),
)

specs = Table(
    "specs",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("spec_hash", String(66), nullable=False),
    Column("spec_uri", Text, nullable=False),
    Column("shard_count", Integer, nullable=False),
    Column("challenge_count", Integer, nullable=False),
    Column("verdict_by", BigInteger, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("accept_by", BigInteger, nullable=True),
    Column("deliver_by", BigInteger, nullable=True),
    Column("closed", Boolean, nullable=False, default=False, server_default=false()),
)
CLOSING_EVENTS = ("JobCancelled", "JobExpired", "JobDefaulted")
"""Logs that end a job before any result: its spec row is closed."""

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("result_root", String(66), nullable=True),
    Column("bundle_uri", Text, nullable=True),
    Column("seed_block", BigInteger, nullable=True),
    Column("submitted_block", BigInteger, nullable=True),
    Column("provider", String(42), nullable=True),
    Column("state", String(16), nullable=False, index=True),
    Column("accepted", Boolean, nullable=True),
    Column("reasons", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("seen_at", Float, nullable=False),
    Column("verify_started_at", Float, nullable=True),
    Column("verified_at", Float, nullable=True),
    Column("tx_id", Integer, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("settled_tx", String(66), nullable=True),
    Column("settled_block", BigInteger, nullable=True),
    Column("final", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("result_root", String(66), primary_key=True),
    Column("accepted", Boolean, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("challenged", Text, nullable=False),
    Column("latency_s", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("seed", String(66), nullable=True),
)

signatures = Table(
    "signatures",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("result_root", String(66), primary_key=True),
    Column("signer", String(42), primary_key=True),
    Column("accepted", Boolean, nullable=False),
    Column("signature", String(132), nullable=False),
    Column("own", Boolean, nullable=False),
    Column("received_at", Float, nullable=False),
)

txs = Table(
    "txs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender", String(42), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("job_ids", Text, nullable=False),
    Column("to_address", String(42), nullable=False),
    Column("data", Text, nullable=False),
    Column("gas", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("mined_hash", String(66), nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

tx_attempts = Table(
    "tx_attempts",
    metadata,
    Column("hash", String(66), primary_key=True),
    Column("tx_id", Integer, ForeignKey("txs.id"), nullable=False, index=True),
    Column("raw", Text, nullable=False),
    Column("max_fee", BigInteger, nullable=False),
    Column("priority_fee", BigInteger, nullable=False),
    Column("sent_block", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)


def _migration_1(conn: Connection) -> None:
    """The initial schema."""
    metadata.create_all(
        conn,
        tables=[meta, blocks, events, specs, jobs, verdicts, signatures, txs, tx_attempts],
    )


def _migration_2(conn: Connection) -> None:
    """Specs keep the accept and deliver deadlines and whether the job ended unsubmitted;
    rows from before are filled in from their stored JobPosted and closing logs."""
    have = {c["name"] for c in inspect(conn).get_columns("specs")}
    for name, ddl in (
        ("accept_by", "BIGINT"),
        ("deliver_by", "BIGINT"),
        ("closed", "BOOLEAN NOT NULL DEFAULT false"),
    ):
        if name not in have:
            conn.execute(text(f"ALTER TABLE specs ADD COLUMN {name} {ddl}"))
    posted = conn.execute(
        select(events.c.job_id, events.c.data).where(events.c.name == "JobPosted")
    ).all()
    for job_id, data in posted:
        d = json.loads(data)
        conn.execute(
            update(specs)
            .where(specs.c.job_id == job_id)
            .values(accept_by=int(d["acceptBy"]), deliver_by=int(d["deliverBy"]))
        )


def _migration_3(conn: Connection) -> None:
    """A verdict records the challenge seed it judged (signatures bind it). Verdicts from
    before have none: they are never signed again (their old signatures cannot settle)."""
    have = {c["name"] for c in inspect(conn).get_columns("verdicts")}
    if "seed" not in have:
        conn.execute(text("ALTER TABLE verdicts ADD COLUMN seed VARCHAR(66)"))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _migration_1),
    (2, _migration_2),
    (3, _migration_3),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite (WAL, a busy timeout, shared across threads) or any
    other SQLAlchemy URL (PostgreSQL: ``postgresql+psycopg://user:pw@host/db``)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, future=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, future=True)

"""The oracle's durable memory: SQLAlchemy Core, one schema for SQLite and PostgreSQL.

What it records, and why a restart at any instant resumes without loss or double payment:

* ``meta``: the ingestion cursor (last block fully processed), and the chain id and market
  address the database belongs to (a database is never reused for another market).
* ``blocks``: the hash of every block the oracle took logs from, and of each range's last
  block; a stored hash that is no longer on chain is how a reorg is noticed.
* ``events``: every market log ingested (block, index, name, job, fields); a rollback
  deletes those above the common ancestor and rebuilds the jobs they touched.
* ``jobs``: one row per job with a committed result, moving through the states
  ``seen -> verifying -> verified -> signed -> submitted -> settled``, or to ``expired``.
  Every transition is a conditional UPDATE in its own transaction, so repeating one is a
  no-op.
* ``verdicts``: the decision on one (job, result root), primary key (job, root): once
  decided, it is never decided again, whatever happens to the job row.
* ``signatures``: own and peers' EIP-712 signatures, primary key (job, root, signer): the
  oracle cannot hold two different signed verdicts of its own for one (job, root).
* ``txs`` and ``tx_attempts``: every transaction is written here (signed, with its nonce
  and raw bytes) *before* it is broadcast, and every fee replacement too, so after a crash
  the oracle knows each hash it may have sent and rebroadcasts or finds the receipt.

* ``specs``: each job's JobPosted record (spec, deadlines), and whether it ended without a
  result (cancelled, expired, defaulted): upkeep expires a job nobody took or delivered.

Migrations: ``schema_version`` holds one row per applied migration; `Store.migrate` applies
the missing ones in order, each in one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
    delete,
    event,
    false,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from oracle.errors import ConflictingVerdictError, StoreError

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


@dataclass(frozen=True)
class ChainEvent:
    """One decoded market log, as ingestion hands it to the store."""

    block_number: int
    log_index: int
    block_hash: str
    tx_hash: str
    name: str
    job_id: int | None
    data: dict[str, Any]


@dataclass(frozen=True)
class SpecRow:
    job_id: int
    spec_hash: bytes
    spec_uri: str
    shard_count: int
    challenge_count: int
    verdict_by: int
    accept_by: int | None = None
    deliver_by: int | None = None


@dataclass(frozen=True)
class Unsubmitted:
    """A job whose acceptance deadline has passed with no result seen and no end recorded:
    expired if nobody accepted it, defaulted once its delivery deadline passes."""

    job_id: int
    accept_by: int
    deliver_by: int


@dataclass(frozen=True)
class JobRow:
    job_id: int
    result_root: bytes | None
    bundle_uri: str | None
    seed_block: int | None
    submitted_block: int | None
    provider: str | None
    state: str
    accepted: bool | None
    reasons: str | None
    attempts: int
    next_attempt_at: float
    seen_at: float
    verify_started_at: float | None
    verified_at: float | None
    tx_id: int | None
    outcome: str | None
    settled_tx: str | None
    settled_block: int | None
    final: bool


@dataclass(frozen=True)
class VerdictRow:
    job_id: int
    result_root: bytes
    accepted: bool
    reasons: list[str]
    challenged: list[int]
    latency_s: float | None
    seed: bytes | None
    """The challenge seed the verdict judged (None only for verdicts stored before
    migration 3, which are never signed)."""


@dataclass(frozen=True)
class SignatureRow:
    job_id: int
    result_root: bytes
    signer: str
    accepted: bool
    signature: bytes
    own: bool


@dataclass(frozen=True)
class Attempt:
    hash: str
    raw: bytes
    max_fee: int
    priority_fee: int
    sent_block: int


@dataclass(frozen=True)
class TxRow:
    id: int
    sender: str
    nonce: int
    kind: str
    job_ids: list[int]
    to_address: str
    data: bytes
    gas: int
    status: str
    mined_hash: str | None
    block_number: int | None
    attempts: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class RollbackReport:
    ancestor: int
    events_removed: int
    jobs_touched: list[int]


def _job(row: Any) -> JobRow:
    m = row._mapping
    return JobRow(
        job_id=int(m["job_id"]),
        result_root=unhex(m["result_root"]) if m["result_root"] else None,
        bundle_uri=m["bundle_uri"],
        seed_block=m["seed_block"],
        submitted_block=m["submitted_block"],
        provider=m["provider"],
        state=m["state"],
        accepted=m["accepted"],
        reasons=m["reasons"],
        attempts=int(m["attempts"]),
        next_attempt_at=float(m["next_attempt_at"]),
        seen_at=float(m["seen_at"]),
        verify_started_at=m["verify_started_at"],
        verified_at=m["verified_at"],
        tx_id=m["tx_id"],
        outcome=m["outcome"],
        settled_tx=m["settled_tx"],
        settled_block=m["settled_block"],
        final=bool(m["final"]),
    )


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


class Store:
    """Typed access to the oracle's database; every method is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ schema

    def migrate(self) -> int:
        """Applies missing migrations in order; returns the schema version."""
        with self.engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
        with self.engine.begin() as conn:
            done = {int(v) for v in conn.execute(select(schema_version.c.version)).scalars()}
        for version, apply in MIGRATIONS:
            if version in done:
                continue
            with self.engine.begin() as conn:
                apply(conn)
                conn.execute(insert(schema_version).values(version=version, applied_at=time.time()))
        return self.version()

    def version(self) -> int:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("schema_version"):
                return 0
            value = conn.execute(select(func.max(schema_version.c.version))).scalar()
        return int(value or 0)

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        if conn.execute(select(meta.c.key).where(meta.c.key == key)).first() is None:
            conn.execute(insert(meta).values(key=key, value=value))
        else:
            conn.execute(update(meta).where(meta.c.key == key).values(value=value))

    def bind_identity(self, chain_id: int, market: str) -> None:
        """Ties the database to one chain and market; refuses a database used for another."""
        with self.engine.begin() as conn:
            for key, value in (("chain_id", str(chain_id)), ("market", market.lower())):
                stored = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
                if stored is None:
                    conn.execute(insert(meta).values(key=key, value=value))
                elif stored != value:
                    raise StoreError(
                        f"this database belongs to {key} {stored}, not {value}: "
                        "use another database URL"
                    )

    def cursor(self) -> int | None:
        value = self.get_meta("cursor")
        return None if value is None else int(value)

    # ------------------------------------------------------------------ blocks and events

    def block_hash(self, number: int) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(blocks.c.hash).where(blocks.c.number == number)).scalar()
        return None if value is None else str(value)

    def stored_blocks_desc(self, at_or_below: int, limit: int = 64) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.number <= at_or_below)
                .order_by(blocks.c.number.desc())
                .limit(limit)
            ).all()
        return [(int(n), str(h)) for n, h in rows]

    def ingest(
        self,
        from_block: int,
        to_block: int,
        chain_events: Sequence[ChainEvent],
        hashes: dict[int, str],
        now: float | None = None,
    ) -> list[int]:
        """Records the logs of blocks [from_block, to_block] and moves the cursor to
        to_block, all in one transaction. Returns the ids of the jobs the logs touched.

        The cursor must stand at from_block - 1 (or be unset): ranges are applied in order
        exactly once, so an interrupted ingestion simply repeats its range."""
        now = time.time() if now is None else now
        touched: list[int] = []
        with self.engine.begin() as conn:
            stored = conn.execute(select(meta.c.value).where(meta.c.key == "cursor")).scalar()
            if stored is not None and int(stored) != from_block - 1:
                raise StoreError(f"cursor is at {stored}, cannot ingest from {from_block}")
            for number, block_hash in sorted(hashes.items()):
                existing = conn.execute(
                    select(blocks.c.hash).where(blocks.c.number == number)
                ).scalar()
                if existing is None:
                    conn.execute(insert(blocks).values(number=number, hash=block_hash))
                elif existing != block_hash:
                    conn.execute(
                        update(blocks).where(blocks.c.number == number).values(hash=block_hash)
                    )
            for ev in sorted(chain_events, key=lambda e: (e.block_number, e.log_index)):
                conn.execute(
                    insert(events).values(
                        block_number=ev.block_number,
                        log_index=ev.log_index,
                        block_hash=ev.block_hash,
                        tx_hash=ev.tx_hash,
                        name=ev.name,
                        job_id=ev.job_id,
                        data=json.dumps(ev.data, sort_keys=True),
                    )
                )
                if ev.job_id is not None:
                    self._apply_event(conn, ev, now)
                    touched.append(ev.job_id)
            self._set_meta(conn, "cursor", str(to_block))
        return sorted(set(touched))

    def _apply_event(self, conn: Connection, ev: ChainEvent, now: float) -> None:
        job_id = ev.job_id
        assert job_id is not None
        d = ev.data
        if ev.name == "JobPosted":
            row = {
                "spec_hash": d["specHash"],
                "spec_uri": d["specURI"],
                "shard_count": int(d["shardCount"]),
                "challenge_count": int(d["challengeCount"]),
                "verdict_by": int(d["verdictBy"]),
                "block_number": ev.block_number,
                "accept_by": int(d["acceptBy"]),
                "deliver_by": int(d["deliverBy"]),
            }
            if conn.execute(select(specs.c.job_id).where(specs.c.job_id == job_id)).first():
                conn.execute(update(specs).where(specs.c.job_id == job_id).values(**row))
            else:
                conn.execute(insert(specs).values(job_id=job_id, **row))
        elif ev.name == "ResultSubmitted":
            self._submitted(
                conn,
                job_id,
                root=d["resultRoot"],
                bundle_uri=d["bundleURI"],
                seed_block=int(d["seedBlock"]),
                block=ev.block_number,
                provider=d["provider"],
                now=now,
            )
        elif ev.name in ("JobPaid", "JobRejected"):
            outcome = "paid" if ev.name == "JobPaid" else "rejected"
            self._ensure_row(conn, job_id, now)
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    state=SETTLED,
                    outcome=outcome,
                    settled_tx=ev.tx_hash,
                    settled_block=ev.block_number,
                    final=True,
                    updated_at=now,
                )
            )
        elif ev.name in CLOSING_EVENTS:
            conn.execute(update(specs).where(specs.c.job_id == job_id).values(closed=True))
        elif ev.name == "JobLapsed":
            self._ensure_row(conn, job_id, now)
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    state=EXPIRED,
                    outcome="lapsed",
                    settled_tx=ev.tx_hash,
                    settled_block=ev.block_number,
                    final=True,
                    updated_at=now,
                )
            )

    def _ensure_row(self, conn: Connection, job_id: int, now: float) -> None:
        if conn.execute(select(jobs.c.job_id).where(jobs.c.job_id == job_id)).first() is None:
            conn.execute(
                insert(jobs).values(
                    job_id=job_id,
                    state=SEEN,
                    seen_at=now,
                    updated_at=now,
                    attempts=0,
                    next_attempt_at=0.0,
                    final=False,
                )
            )

    def _submitted(
        self,
        conn: Connection,
        job_id: int,
        *,
        root: str,
        bundle_uri: str,
        seed_block: int,
        block: int,
        provider: str,
        now: float,
    ) -> None:
        row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        fields = {
            "result_root": root,
            "bundle_uri": bundle_uri,
            "seed_block": seed_block,
            "submitted_block": block,
            "provider": provider,
        }
        if row is None:
            conn.execute(
                insert(jobs).values(
                    job_id=job_id,
                    state=SEEN,
                    seen_at=now,
                    updated_at=now,
                    attempts=0,
                    next_attempt_at=0.0,
                    final=False,
                    **fields,
                )
            )
        elif row._mapping["result_root"] != root and not row._mapping["final"]:
            # A reorg replaced the commitment: start over for the new root (the verdict and
            # signature for the old root stay recorded under their own key).
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    state=SEEN,
                    accepted=None,
                    reasons=None,
                    attempts=0,
                    next_attempt_at=0.0,
                    verify_started_at=None,
                    verified_at=None,
                    tx_id=None,
                    outcome=None,
                    settled_tx=None,
                    settled_block=None,
                    seen_at=now,
                    updated_at=now,
                    **fields,
                )
            )
        else:
            conn.execute(
                update(jobs).where(jobs.c.job_id == job_id).values(updated_at=now, **fields)
            )

    def rollback(self, ancestor: int, now: float | None = None) -> RollbackReport:
        """Forgets everything ingested above block `ancestor` (a reorg's common ancestor)
        and rebuilds the jobs those logs touched from the logs that remain. Signatures and
        verdicts are kept: they are bound to (job, root) and stay true."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            removed = conn.execute(
                select(events.c.job_id).where(events.c.block_number > ancestor)
            ).all()
            touched = sorted({int(r[0]) for r in removed if r[0] is not None})
            conn.execute(delete(events).where(events.c.block_number > ancestor))
            conn.execute(delete(blocks).where(blocks.c.number > ancestor))
            # Settlements we saw mined above the ancestor may be gone: look again.
            conn.execute(
                update(txs)
                .where(txs.c.status.in_([TX_MINED, TX_REVERTED]), txs.c.block_number > ancestor)
                .values(status=TX_PENDING, mined_hash=None, block_number=None, updated_at=now)
            )
            receipt_settled = conn.execute(
                select(jobs.c.job_id).where(
                    jobs.c.final.is_(False),
                    jobs.c.state.in_([SETTLED, EXPIRED]),
                    jobs.c.settled_block > ancestor,
                )
            ).all()
            for job_id in sorted({*touched, *(int(r[0]) for r in receipt_settled)}):
                self._rebuild(conn, job_id, now)
            self._set_meta(conn, "cursor", str(ancestor))
        return RollbackReport(ancestor, len(removed), touched)

    def _rebuild(self, conn: Connection, job_id: int, now: float) -> None:
        remaining = conn.execute(
            select(events.c.name, events.c.data, events.c.block_number, events.c.tx_hash)
            .where(events.c.job_id == job_id)
            .order_by(events.c.block_number, events.c.log_index)
        ).all()
        submitted = [r for r in remaining if r[0] == "ResultSubmitted"]
        ended = [r for r in remaining if r[0] in ("JobPaid", "JobRejected", "JobLapsed")]
        posted = [r for r in remaining if r[0] == "JobPosted"]
        if not posted:
            conn.execute(delete(specs).where(specs.c.job_id == job_id))
        else:
            closed = any(r[0] in CLOSING_EVENTS for r in remaining)
            conn.execute(update(specs).where(specs.c.job_id == job_id).values(closed=closed))
        row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        if row is None:
            return
        if not submitted and not ended:
            conn.execute(delete(jobs).where(jobs.c.job_id == job_id))
            return
        if ended:
            return  # its end is still on chain: nothing to undo
        state = row._mapping["state"]
        pending_tx = row._mapping["tx_id"] is not None and state == SUBMITTED
        if state in (SETTLED, EXPIRED) or not row._mapping["result_root"]:
            data = json.loads(submitted[-1][1])
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    state=SUBMITTED if pending_tx else SEEN,
                    result_root=data["resultRoot"],
                    bundle_uri=data["bundleURI"],
                    seed_block=int(data["seedBlock"]),
                    submitted_block=int(submitted[-1][2]),
                    outcome=None,
                    settled_tx=None,
                    settled_block=None,
                    final=False,
                    updated_at=now,
                )
            )
            if state == SETTLED and row._mapping["tx_id"] is not None:
                # Our own settlement's block is gone: wait for its transaction again.
                conn.execute(update(jobs).where(jobs.c.job_id == job_id).values(state=SUBMITTED))

    # ------------------------------------------------------------------ specs and jobs

    def spec(self, job_id: int) -> SpecRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(specs).where(specs.c.job_id == job_id)).first()
        if row is None:
            return None
        m = row._mapping
        return SpecRow(
            job_id=int(m["job_id"]),
            spec_hash=unhex(m["spec_hash"]),
            spec_uri=m["spec_uri"],
            shard_count=int(m["shard_count"]),
            challenge_count=int(m["challenge_count"]),
            verdict_by=int(m["verdict_by"]),
            accept_by=None if m["accept_by"] is None else int(m["accept_by"]),
            deliver_by=None if m["deliver_by"] is None else int(m["deliver_by"]),
        )

    def unsubmitted_past(self, chain_now: int) -> list[Unsubmitted]:
        """Jobs posted (as ingested) whose acceptance deadline is before `chain_now`, with no
        result seen and no end recorded, oldest first."""
        query = (
            select(specs.c.job_id, specs.c.accept_by, specs.c.deliver_by)
            .where(
                specs.c.closed.is_(False),
                specs.c.accept_by.is_not(None),
                specs.c.accept_by < chain_now,
                ~select(jobs.c.job_id).where(jobs.c.job_id == specs.c.job_id).exists(),
            )
            .order_by(specs.c.job_id)
        )
        with self.engine.connect() as conn:
            return [Unsubmitted(int(j), int(a), int(d)) for j, a, d in conn.execute(query).all()]

    def put_spec(self, spec: SpecRow, block_number: int) -> None:
        """Records a spec found outside ingestion (a JobPosted from before `start_block`)."""
        with self.engine.begin() as conn:
            if conn.execute(select(specs.c.job_id).where(specs.c.job_id == spec.job_id)).first():
                return
            conn.execute(
                insert(specs).values(
                    job_id=spec.job_id,
                    spec_hash=hex32(spec.spec_hash),
                    spec_uri=spec.spec_uri,
                    shard_count=spec.shard_count,
                    challenge_count=spec.challenge_count,
                    verdict_by=spec.verdict_by,
                    block_number=block_number,
                    accept_by=spec.accept_by,
                    deliver_by=spec.deliver_by,
                )
            )

    def job(self, job_id: int) -> JobRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        return None if row is None else _job(row)

    def jobs(self, states: Iterable[str] | None = None, final: bool | None = None) -> list[JobRow]:
        """Jobs in `states` (all when None), only final or only not-final ones if asked."""
        query = select(jobs).order_by(jobs.c.job_id)
        if states is not None:
            query = query.where(jobs.c.state.in_(list(states)))
        if final is not None:
            query = query.where(jobs.c.final.is_(final))
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query).all()]

    def counts_by_state(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
        counts = dict.fromkeys(STATES, 0)
        counts.update({str(s): int(n) for s, n in rows})
        return counts

    def _transition(
        self, job_id: int, allowed: Sequence[str], root: bytes | None = None, **values: Any
    ) -> bool:
        """Moves a job whose state is in `allowed` (and whose root is `root`, if given);
        returns whether it moved. A repeated transition is a no-op returning False."""
        values.setdefault("updated_at", time.time())
        query = update(jobs).where(jobs.c.job_id == job_id, jobs.c.state.in_(list(allowed)))
        if root is not None:
            query = query.where(jobs.c.result_root == hex32(root))
        with self.engine.begin() as conn:
            return bool(conn.execute(query.values(**values)).rowcount)

    def recover(self) -> int:
        """After a restart: verifications that were running are lost; queue them again."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(jobs)
                    .where(jobs.c.state == VERIFYING)
                    .values(state=SEEN, verify_started_at=None, updated_at=time.time())
                ).rowcount
            )

    def start_verifying(self, job_id: int, root: bytes, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self._transition(
            job_id,
            [SEEN],
            root,
            state=VERIFYING,
            verify_started_at=now,
            attempts=jobs.c.attempts + 1,
            updated_at=now,
        )

    def retry_later(self, job_id: int, root: bytes, at: float, reasons: Sequence[str]) -> bool:
        """A verification that failed only transiently (or crashed): back to `seen`."""
        return self._transition(
            job_id,
            [VERIFYING],
            root,
            state=SEEN,
            next_attempt_at=at,
            reasons=json.dumps(list(reasons)),
            verify_started_at=None,
        )

    def verdict(self, job_id: int, root: bytes) -> VerdictRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(verdicts).where(
                    verdicts.c.job_id == job_id, verdicts.c.result_root == hex32(root)
                )
            ).first()
        if row is None:
            return None
        m = row._mapping
        return VerdictRow(
            job_id=int(m["job_id"]),
            result_root=unhex(m["result_root"]),
            accepted=bool(m["accepted"]),
            reasons=list(json.loads(m["reasons"])),
            challenged=list(json.loads(m["challenged"])),
            latency_s=m["latency_s"],
            seed=unhex(m["seed"]) if m["seed"] else None,
        )

    def record_verdict(
        self,
        job_id: int,
        root: bytes,
        accepted: bool,
        reasons: Sequence[str],
        challenged: Sequence[int],
        latency_s: float | None = None,
        now: float | None = None,
        *,
        seed: bytes | None = None,
    ) -> VerdictRow:
        """Records the decision on (job, root) and moves the job to `verified`. If a
        decision was already recorded, it stands: the stored one is returned and used."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(verdicts.c.job_id).where(
                    verdicts.c.job_id == job_id, verdicts.c.result_root == hex32(root)
                )
            ).first()
            if exists is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(verdicts).values(
                                job_id=job_id,
                                result_root=hex32(root),
                                accepted=accepted,
                                reasons=json.dumps(list(reasons)),
                                challenged=json.dumps(list(challenged)),
                                latency_s=latency_s,
                                created_at=now,
                                seed=hex32(seed) if seed is not None else None,
                            )
                        )
                except IntegrityError:
                    pass  # decided concurrently: the stored decision stands
        stored = self.verdict(job_id, root)
        assert stored is not None
        self._transition(
            job_id,
            [SEEN, VERIFYING],
            root,
            state=VERIFIED,
            accepted=stored.accepted,
            reasons=json.dumps(stored.reasons),
            verified_at=now,
            updated_at=now,
        )
        return stored

    def expire(self, job_id: int, reasons: Sequence[str] = ()) -> bool:
        """The verdict deadline passed without a settlement we know of (the chain will let
        anyone lapse the job). Not final: a settlement log still moves it to `settled`."""
        return self._transition(
            job_id,
            [SEEN, VERIFYING, VERIFIED, SIGNED],
            state=EXPIRED,
            reasons=json.dumps(list(reasons)) if reasons else None,
        )

    # ------------------------------------------------------------------ signatures

    def record_signature(
        self,
        job_id: int,
        root: bytes,
        signer: str,
        accepted: bool,
        signature: bytes,
        own: bool,
    ) -> bool:
        """Stores a signature over Verdict(job, root, accepted); returns whether it is new.

        Own signatures: a second one over a different verdict raises
        ConflictingVerdictError (the oracle never signs both). A peer's conflicting
        signature is refused the same way: the first one it gave is what it stands by."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(signatures.c.accepted, signatures.c.own).where(
                    signatures.c.job_id == job_id,
                    signatures.c.result_root == hex32(root),
                    signatures.c.signer == signer,
                )
            ).first()
            if row is not None:
                if bool(row[0]) != accepted:
                    raise ConflictingVerdictError(job_id, root, bool(row[0]), accepted)
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(signatures).values(
                            job_id=job_id,
                            result_root=hex32(root),
                            signer=signer,
                            accepted=accepted,
                            signature="0x" + signature.hex(),
                            own=own,
                            received_at=time.time(),
                        )
                    )
            except IntegrityError as exc:
                raise ConflictingVerdictError(job_id, root, not accepted, accepted) from exc
        return True

    def signatures(
        self, job_id: int, root: bytes | None = None, own: bool | None = None
    ) -> list[SignatureRow]:
        query = select(signatures).where(signatures.c.job_id == job_id)
        if root is not None:
            query = query.where(signatures.c.result_root == hex32(root))
        if own is not None:
            query = query.where(signatures.c.own.is_(own))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(signatures.c.signer)).all()
        return [
            SignatureRow(
                job_id=int(r._mapping["job_id"]),
                result_root=unhex(r._mapping["result_root"]),
                signer=r._mapping["signer"],
                accepted=bool(r._mapping["accepted"]),
                signature=unhex(r._mapping["signature"]),
                own=bool(r._mapping["own"]),
            )
            for r in rows
        ]

    def mark_signed(self, job_id: int, root: bytes) -> bool:
        return self._transition(job_id, [VERIFIED], root, state=SIGNED)

    # ------------------------------------------------------------------ transactions

    def create_tx(
        self,
        sender: str,
        nonce: int,
        kind: str,
        job_ids: Sequence[int],
        to_address: str,
        data: bytes,
        gas: int,
        attempt: Attempt,
    ) -> int:
        """Records a signed transaction (before it is broadcast) and moves its jobs to
        `submitted`; returns its id."""
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(txs).values(
                    sender=sender,
                    nonce=nonce,
                    kind=kind,
                    job_ids=json.dumps(list(job_ids)),
                    to_address=to_address,
                    data="0x" + data.hex(),
                    gas=gas,
                    status=TX_PENDING,
                    created_at=now,
                    updated_at=now,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            tx_id = int(pk[0])
            self._insert_attempt(conn, tx_id, attempt, now)
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id.in_(list(job_ids)), jobs.c.state.in_([SIGNED, VERIFIED]))
                .values(state=SUBMITTED, tx_id=tx_id, updated_at=now)
            )
        return tx_id

    def _insert_attempt(self, conn: Connection, tx_id: int, attempt: Attempt, now: float) -> None:
        conn.execute(
            insert(tx_attempts).values(
                hash=attempt.hash,
                tx_id=tx_id,
                raw="0x" + attempt.raw.hex(),
                max_fee=attempt.max_fee,
                priority_fee=attempt.priority_fee,
                sent_block=attempt.sent_block,
                created_at=now,
            )
        )

    def add_attempt(self, tx_id: int, attempt: Attempt) -> None:
        """Records a fee replacement (before it is broadcast)."""
        with self.engine.begin() as conn:
            self._insert_attempt(conn, tx_id, attempt, time.time())

    def touch_attempt(self, tx_hash: str, sent_block: int) -> None:
        """Notes a rebroadcast, restarting the stuck-transaction clock."""
        with self.engine.begin() as conn:
            conn.execute(
                update(tx_attempts)
                .where(tx_attempts.c.hash == tx_hash)
                .values(sent_block=sent_block)
            )

    def txs(self, statuses: Sequence[str] | None = None, sender: str | None = None) -> list[TxRow]:
        query = select(txs).order_by(txs.c.nonce, txs.c.id)
        if statuses is not None:
            query = query.where(txs.c.status.in_(list(statuses)))
        if sender is not None:
            query = query.where(txs.c.sender == sender)
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query).all():
                m = row._mapping
                attempts = conn.execute(
                    select(tx_attempts)
                    .where(tx_attempts.c.tx_id == m["id"])
                    .order_by(tx_attempts.c.max_fee, tx_attempts.c.created_at)
                ).all()
                out.append(
                    TxRow(
                        id=int(m["id"]),
                        sender=m["sender"],
                        nonce=int(m["nonce"]),
                        kind=m["kind"],
                        job_ids=[int(j) for j in json.loads(m["job_ids"])],
                        to_address=m["to_address"],
                        data=unhex(m["data"]),
                        gas=int(m["gas"]),
                        status=m["status"],
                        mined_hash=m["mined_hash"],
                        block_number=m["block_number"],
                        attempts=[
                            Attempt(
                                hash=a._mapping["hash"],
                                raw=unhex(a._mapping["raw"]),
                                max_fee=int(a._mapping["max_fee"]),
                                priority_fee=int(a._mapping["priority_fee"]),
                                sent_block=int(a._mapping["sent_block"]),
                            )
                            for a in attempts
                        ],
                    )
                )
        return out

    def max_nonce(self, sender: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.max(txs.c.nonce)).where(txs.c.sender == sender)
            ).scalar()
        return None if value is None else int(value)

    def finish_tx(
        self, tx_id: int, status: str, mined_hash: str | None, block_number: int | None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(txs)
                .where(txs.c.id == tx_id)
                .values(
                    status=status,
                    mined_hash=mined_hash,
                    block_number=block_number,
                    updated_at=time.time(),
                )
            )

    def settled_by_receipt(
        self, job_id: int, outcome: str | None, tx_hash: str, block_number: int
    ) -> bool:
        """Our transaction settled the job (its log becomes final through ingestion)."""
        return self._transition(
            job_id,
            [SEEN, VERIFYING, VERIFIED, SIGNED, SUBMITTED, EXPIRED],
            state=SETTLED,
            outcome=outcome,
            settled_tx=tx_hash,
            settled_block=block_number,
        )

    def settled_elsewhere(self, job_id: int, outcome: str | None, block_number: int | None) -> bool:
        """The chain shows the job settled by someone else's transaction."""
        return self._transition(
            job_id,
            [SEEN, VERIFYING, VERIFIED, SIGNED, SUBMITTED, EXPIRED],
            state=SETTLED,
            outcome=outcome,
            settled_block=block_number,
        )

    def back_to_signed(self, job_id: int) -> bool:
        """A settlement transaction failed or vanished while the job is still open."""
        return self._transition(job_id, [SUBMITTED], state=SIGNED, tx_id=None)

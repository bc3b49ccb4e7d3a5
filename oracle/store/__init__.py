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

import time

from sqlalchemy import func, insert, inspect, select

from oracle.errors import StoreError
from oracle.store.jobs import JobsMixin
from oracle.store.journal import JournalMixin, StoreJournal
from oracle.store.projection import ProjectionMixin
from oracle.store.rows import (
    ChainEvent,
    JobRow,
    RollbackReport,
    SignatureRow,
    SpecRow,
    TxRow,
    Unsubmitted,
    VerdictRow,
)
from oracle.store.schema import (
    CLOSING_EVENTS,
    EXPIRED,
    MIGRATIONS,
    SCHEMA_VERSION,
    SEEN,
    SETTLED,
    SIGNED,
    STATES,
    SUBMITTED,
    TX_DROPPED,
    TX_MINED,
    TX_PENDING,
    TX_REVERTED,
    VERIFIED,
    VERIFYING,
    hex32,
    make_engine,
    meta,
    metadata,
    schema_version,
    unhex,
)

__all__ = [
    "CLOSING_EVENTS",
    "EXPIRED",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SEEN",
    "SETTLED",
    "SIGNED",
    "STATES",
    "SUBMITTED",
    "TX_DROPPED",
    "TX_MINED",
    "TX_PENDING",
    "TX_REVERTED",
    "VERIFIED",
    "VERIFYING",
    "ChainEvent",
    "JobRow",
    "RollbackReport",
    "SignatureRow",
    "SpecRow",
    "Store",
    "StoreJournal",
    "TxRow",
    "Unsubmitted",
    "VerdictRow",
    "hex32",
    "make_engine",
    "metadata",
    "schema_version",
    "unhex",
]


class Store(ProjectionMixin, JobsMixin, JournalMixin):
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

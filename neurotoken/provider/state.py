"""The agent's memory across restarts: one SQLite file of the jobs it has seen and acted on.

The chain stays the source of truth; this file says what the agent already did, so that a
restart neither accepts a job twice nor submits twice. A transaction's hash is written here
*before* it is broadcast (status `accepting` / `submitting`), so a crash between sending and
recording leaves a trace that the next run reconciles against the chain. Every attempt at a
transaction (each fee replacement has its own hash) is kept, not only the latest: the node
may hold an earlier one when a crash came between recording a replacement and sending it.
Shard outputs are not here: the compute journal (`neurotoken.provider.compute`) keeps those.
The quotes the provider signed are (table `quotes`, by the digest of the record each accepts):
until posted or past its acceptBy, each counts as a job in hand.

The file is bound to one chain, one market and one provider address; opening it with any
other raises ConfigError instead of mixing two histories.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from neurotoken.errors import ConfigError


class JobStatus(StrEnum):
    SEEN = "seen"
    """Posted; not decided yet."""
    DEFERRED = "deferred"
    """Refused for a reason that may pass (spec server down, stake busy): looked at again."""
    REFUSED = "refused"
    """Refused for good (reason stored)."""
    GONE = "gone"
    """No longer open before this provider took it (taken, cancelled or expired)."""
    ACCEPTING = "accepting"
    """acceptJob signed (hash stored), outcome not seen yet."""
    ACCEPTED = "accepted"
    COMPUTED = "computed"
    """All shards computed and the bundle published (root stored)."""
    SUBMITTING = "submitting"
    """submitResult signed (hash stored), outcome not seen yet."""
    SUBMITTED = "submitted"
    PAID = "paid"
    REJECTED = "rejected"
    DEFAULTED = "defaulted"
    LAPSED = "lapsed"
    MISSED = "missed"
    """deliverBy passed before the result could be submitted."""


OPEN_WORK = (JobStatus.ACCEPTING, JobStatus.ACCEPTED, JobStatus.COMPUTED, JobStatus.SUBMITTING)
"""Jobs this provider holds and still has to deliver."""
UNDECIDED = (JobStatus.SEEN, JobStatus.DEFERRED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id      INTEGER PRIMARY KEY,
    status      TEXT NOT NULL,
    spec_uri    TEXT NOT NULL,
    spec_hash   TEXT NOT NULL,
    reason      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    estimate_s  REAL,
    accept_tx   TEXT,
    root        TEXT,
    bundle_uri  TEXT,
    submit_tx   TEXT,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS quotes (
    digest          TEXT PRIMARY KEY,
    client          TEXT NOT NULL,
    spec_uri        TEXT NOT NULL,
    spec_hash       TEXT NOT NULL,
    collateral_ntk  TEXT NOT NULL,
    accept_by       INTEGER NOT NULL,
    estimate_s      REAL NOT NULL,
    job_id          INTEGER,
    signed_at       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tx_attempts (
    job_id      INTEGER NOT NULL,
    field       TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (job_id, field, hash)
);
"""
TX_FIELDS = ("accept_tx", "submit_tx")
"""Fields holding the hash of a transaction; every hash ever written to one is kept in
`tx_attempts` until the field is cleared, so that a restart can look at each attempt."""

_FIELDS = (
    "status",
    "reason",
    "attempts",
    "estimate_s",
    "accept_tx",
    "root",
    "bundle_uri",
    "submit_tx",
)


@dataclass(frozen=True)
class QuoteRecord:
    """A quote this provider signed: the digest of the record it accepts, and what it holds
    until the client posts it (`job_id`, the first job posted with it) or its acceptBy passes."""

    digest: str
    client: str
    spec_uri: str
    spec_hash: str
    collateral_ntk: int
    accept_by: int
    estimate_s: float
    job_id: int | None
    signed_at: float


@dataclass(frozen=True)
class JobRecord:
    job_id: int
    status: JobStatus
    spec_uri: str
    spec_hash: str
    reason: str | None
    attempts: int
    estimate_s: float | None
    accept_tx: str | None
    root: str | None
    bundle_uri: str | None
    submit_tx: str | None
    updated_at: float


class AgentState:
    """The SQLite store (`<state_dir>/agent.sqlite3`)."""

    def __init__(
        self, path: Path, chain_id: int, market: str, provider: str, *, read_only: bool = False
    ) -> None:
        """With `read_only`, the file (if any) is copied into memory and never written, nor
        created: for commands that only look (`agent jobs`)."""
        self.path = path
        if read_only:
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            if path.is_file():
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
                try:
                    source.backup(self._db)
                finally:
                    source.close()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        for field in TX_FIELDS:  # files written before the history table: their current hashes
            self._db.execute(
                f"INSERT OR IGNORE INTO tx_attempts (job_id, field, hash) "
                f"SELECT job_id, '{field}', lower({field}) FROM jobs WHERE {field} IS NOT NULL"
            )
        self._bind({"chain_id": str(chain_id), "market": market.lower(), "provider": provider})

    def _bind(self, identity: dict[str, str]) -> None:
        for key, value in identity.items():
            stored = self._meta(key)
            if stored is None:
                self._set_meta(key, value.lower())
            elif stored != value.lower():
                raise ConfigError(
                    f"state file {self.path} belongs to {key} {stored}, not {value}: "
                    "use another --state folder"
                )

    def close(self) -> None:
        self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ------------------------------------------------------------------ log cursor

    def next_block(self, default: int) -> int:
        """The first block not yet scanned for posted jobs."""
        value = self._meta("next_block")
        return default if value is None else int(value)

    def set_next_block(self, block: int) -> None:
        self._set_meta("next_block", str(block))

    def first_block(self, default: int, *, keep: bool = True) -> int:
        """The block the first scan started at (`default` on a new file, stored then unless
        not `keep`: a command that never scans leaves it to the first that does): every
        job this file knows was posted at or after it, so job records are searched for from
        there. A file written before this was kept, which has scanned already, says 0."""
        value = self._meta("first_block")
        if value is not None:
            return int(value)
        start = default if self._meta("next_block") is None else 0
        if keep:
            self._set_meta("first_block", str(start))
        return start

    # ------------------------------------------------------------------ jobs

    def add_seen(self, job_id: int, spec_uri: str, spec_hash: str) -> bool:
        """Records a posted job; False when it is already known (a rescan is harmless)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO jobs (job_id, status, spec_uri, spec_hash, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (job_id, JobStatus.SEEN.value, spec_uri, spec_hash, time.time()),
        )
        return cur.rowcount == 1

    def get(self, job_id: int) -> JobRecord | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def with_status(self, *statuses: JobStatus) -> list[JobRecord]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY job_id",
            [s.value for s in statuses],
        ).fetchall()
        return [_record(r) for r in rows]

    def all(self) -> list[JobRecord]:
        return [_record(r) for r in self._db.execute("SELECT * FROM jobs ORDER BY job_id")]

    def update(self, job_id: int, **fields: Any) -> JobRecord:
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        values = {k: (v.value if isinstance(v, JobStatus) else v) for k, v in fields.items()}
        sets = ", ".join(f"{k} = ?" for k in values)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                f"UPDATE jobs SET {sets}, updated_at = ? WHERE job_id = ?",
                [*values.values(), time.time(), job_id],
            )
            if cur.rowcount != 1:
                raise KeyError(f"job {job_id} is not in the state file")
            for field in TX_FIELDS:
                if field not in values:
                    continue
                if values[field] is None:
                    self._db.execute(
                        "DELETE FROM tx_attempts WHERE job_id = ? AND field = ?", (job_id, field)
                    )
                else:
                    self._db.execute(
                        "INSERT OR IGNORE INTO tx_attempts (job_id, field, hash) VALUES (?, ?, ?)",
                        (job_id, field, str(values[field]).lower()),
                    )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        record = self.get(job_id)
        assert record is not None
        return record

    def tx_attempts(self, job_id: int, field: str) -> list[str]:
        """Every hash written to `field` (accept_tx or submit_tx) of the job since it was last
        cleared, oldest first; the current value is among them."""
        if field not in TX_FIELDS:
            raise ValueError(f"{field} is not a transaction field")
        rows = self._db.execute(
            "SELECT hash FROM tx_attempts WHERE job_id = ? AND field = ? ORDER BY rowid",
            (job_id, field),
        ).fetchall()
        return [str(r["hash"]) for r in rows]

    # ------------------------------------------------------------------ quotes

    def add_quote(self, quote: QuoteRecord) -> None:
        """Records a signed quote (a quote signed again replaces the earlier one)."""
        self._db.execute(
            "INSERT INTO quotes (digest, client, spec_uri, spec_hash, collateral_ntk, accept_by, "
            "estimate_s, job_id, signed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (digest) DO UPDATE SET estimate_s = excluded.estimate_s, "
            "spec_uri = excluded.spec_uri, signed_at = excluded.signed_at",
            (
                quote.digest.lower(),
                quote.client,
                quote.spec_uri,
                quote.spec_hash,
                str(quote.collateral_ntk),
                quote.accept_by,
                quote.estimate_s,
                quote.job_id,
                quote.signed_at,
            ),
        )

    def quote(self, digest: str) -> QuoteRecord | None:
        row = self._db.execute(
            "SELECT * FROM quotes WHERE digest = ?", (digest.lower(),)
        ).fetchone()
        return None if row is None else _quote(row)

    def quote_posted(self, digest: str, job_id: int) -> QuoteRecord | None:
        """Marks the quote of `digest` as posted (as job `job_id`, if it was not posted
        before); the quote, or None when this file never signed it."""
        self._db.execute(
            "UPDATE quotes SET job_id = ? WHERE digest = ? AND job_id IS NULL",
            (job_id, digest.lower()),
        )
        return self.quote(digest)

    def outstanding_quotes(self, now: int) -> list[QuoteRecord]:
        """Quotes not posted yet that may still be (acceptBy not passed at chain time `now`)."""
        rows = self._db.execute(
            "SELECT * FROM quotes WHERE job_id IS NULL AND accept_by >= ? ORDER BY signed_at",
            (now,),
        ).fetchall()
        return [_quote(r) for r in rows]


def first_block_of(path: Path) -> int:
    """`AgentState.first_block` of the state file at `path`, read over a connection of its
    own (any thread may call it); 0 where the file or the value is missing."""
    if not path.is_file():
        return 0
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'first_block'").fetchone()
    except sqlite3.OperationalError:  # no meta table yet (a file being created)
        row = None
    finally:
        db.close()
    return 0 if row is None else int(row[0])


def jobs_with_root(path: Path, root: str) -> list[int]:
    """The jobs whose published result root is `root` (0x-hex) in the state file at `path`,
    read over a connection of its own (any thread may call it; a missing file has none)."""
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute(
            "SELECT job_id FROM jobs WHERE lower(root) = ? ORDER BY job_id", (root.lower(),)
        ).fetchall()
    finally:
        db.close()
    return [int(r[0]) for r in rows]


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=int(row["job_id"]),
        status=JobStatus(row["status"]),
        spec_uri=str(row["spec_uri"]),
        spec_hash=str(row["spec_hash"]),
        reason=row["reason"],
        attempts=int(row["attempts"]),
        estimate_s=row["estimate_s"],
        accept_tx=row["accept_tx"],
        root=row["root"],
        bundle_uri=row["bundle_uri"],
        submit_tx=row["submit_tx"],
        updated_at=float(row["updated_at"]),
    )


def _quote(row: sqlite3.Row) -> QuoteRecord:
    return QuoteRecord(
        digest=str(row["digest"]),
        client=str(row["client"]),
        spec_uri=str(row["spec_uri"]),
        spec_hash=str(row["spec_hash"]),
        collateral_ntk=int(row["collateral_ntk"]),
        accept_by=int(row["accept_by"]),
        estimate_s=float(row["estimate_s"]),
        job_id=None if row["job_id"] is None else int(row["job_id"]),
        signed_at=float(row["signed_at"]),
    )

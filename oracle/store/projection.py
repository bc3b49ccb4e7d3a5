"""Projection of the chain's market logs into the store: the block hashes and the
ingestion cursor, `ingest` of a block range's events (each applied to its job and spec
rows), and `rollback` after a reorg, which rebuilds the jobs the removed logs touched."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update

from oracle.errors import StoreError
from oracle.store.base import StoreBase
from oracle.store.rows import ChainEvent, RollbackReport
from oracle.store.schema import (
    CLOSING_EVENTS,
    EXPIRED,
    SEEN,
    SETTLED,
    SUBMITTED,
    TX_MINED,
    TX_PENDING,
    TX_REVERTED,
    blocks,
    events,
    jobs,
    meta,
    specs,
    txs,
)


class ProjectionMixin(StoreBase):
    """Blocks, the cursor, ingestion of chain events and rollback."""

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

"""The job state machine: specs, job rows and their transitions (verifying, verified,
signed, expired), verdicts and signatures, each bound to one (job, result root)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from oracle.errors import ConflictingVerdictError
from oracle.store.base import StoreBase
from oracle.store.rows import JobRow, SignatureRow, SpecRow, Unsubmitted, VerdictRow, _job
from oracle.store.schema import (
    EXPIRED,
    SEEN,
    SIGNED,
    STATES,
    VERIFIED,
    VERIFYING,
    hex32,
    jobs,
    signatures,
    specs,
    unhex,
    verdicts,
)


class JobsMixin(StoreBase):
    """Specs, jobs, verdicts, signatures and their transitions."""

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

    def posted_block(self, job_id: int) -> int | None:
        """The block of the job's JobPosted log (as ingested, or found by `put_spec`): where
        its record's events begin. None for a job whose spec the store does not hold."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(specs.c.block_number).where(specs.c.job_id == job_id)
            ).scalar()
        return None if value is None else int(value)

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

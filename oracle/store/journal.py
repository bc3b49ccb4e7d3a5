"""The transaction journal: every transaction and fee replacement is recorded, signed,
before it is broadcast; a transaction's end (mined, reverted, dropped) and what it did to
its jobs (settled, or back to signed) are recorded here too. `StoreJournal` is this journal
as the shared sender (`neurotoken.chain.sender`) sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from neurotoken.chain.fees import Fees
from neurotoken.chain.sender import Attempt, Call, Outcome, PendingTx
from oracle.store.base import StoreBase
from oracle.store.rows import TxRow
from oracle.store.schema import (
    EXPIRED,
    SEEN,
    SETTLED,
    SIGNED,
    SUBMITTED,
    TX_MINED,
    TX_PENDING,
    TX_REVERTED,
    VERIFIED,
    VERIFYING,
    jobs,
    tx_attempts,
    txs,
    unhex,
)


def _attempt(tx_hash: str, raw: bytes, row: Any) -> Attempt:
    max_fee = int(row["max_fee"])
    # EIP-2718: a typed transaction starts with its type (below 0x80), a legacy one with the
    # head of an RLP list (0xc0 and up)
    legacy = bool(raw) and raw[0] >= 0xC0
    fees = Fees(max_fee, None if legacy else int(row["priority_fee"]))
    return Attempt(tx_hash, raw, fees, sent_block=int(row["sent_block"]))


class JournalMixin(StoreBase):
    """The transaction journal: transactions, their attempts and their ends."""

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
        fees = attempt.fees
        conn.execute(
            insert(tx_attempts).values(
                hash=attempt.hash,
                tx_id=tx_id,
                raw="0x" + attempt.raw.hex(),
                max_fee=fees.max_fee,
                # a legacy attempt's gas price stands in both columns (`_fees` tells by `raw`)
                priority_fee=fees.max_fee if fees.priority_fee is None else fees.priority_fee,
                sent_block=attempt.sent_block,
                created_at=now,
            )
        )

    def add_attempt(self, tx_id: int, attempt: Attempt) -> None:
        """Records a fee replacement (before it is broadcast)."""
        with self.engine.begin() as conn:
            self._insert_attempt(conn, tx_id, attempt, time.time())

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
                            _attempt(a._mapping["hash"], unhex(a._mapping["raw"]), a._mapping)
                            for a in attempts
                        ],
                    )
                )
        return out

    def landed_above(self, block: int) -> list[tuple[int, str, int]]:
        """(id, hash, block) of the transactions seen mined or reverted above `block` (the
        ingestion cursor: in blocks not yet confirmed)."""
        query = (
            select(txs.c.id, txs.c.mined_hash, txs.c.block_number)
            .where(
                txs.c.status.in_([TX_MINED, TX_REVERTED]),
                txs.c.block_number > block,
                txs.c.mined_hash.is_not(None),
            )
            .order_by(txs.c.block_number, txs.c.id)
        )
        with self.engine.connect() as conn:
            return [(int(r[0]), str(r[1]), int(r[2])) for r in conn.execute(query).all()]

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


class StoreJournal:
    """The store as the journal of `neurotoken.chain.sender.Sender` for the oracle's key:
    durable and crash-safe. A transaction's first attempt is recorded in the database
    transaction that moves its jobs to `submitted`, each replacement in its own; both are
    committed before `record` returns, so before the attempt is broadcast. Every attempt
    stays on record (a refused one too): following a transaction looks at all of them."""

    def __init__(self, store: JournalMixin, sender: str) -> None:
        self.store = store
        self.sender = sender

    def record(self, tx: PendingTx, attempt: Attempt) -> None:
        if tx.call.value:
            raise ValueError("the oracle's journal keeps no value: its transactions send none")
        if tx.id is None:
            call = tx.call
            tx.id = self.store.create_tx(
                self.sender, tx.nonce, tx.kind, tx.job_ids, call.to, call.data, call.gas, attempt
            )
        else:
            self.store.add_attempt(tx.id, attempt)

    def refused(self, tx: PendingTx) -> None:
        pass  # its attempts stay on record

    def finish(self, outcome: Outcome) -> None:
        if outcome.tx.id is None:
            raise ValueError("a transaction this journal never recorded")
        self.store.finish_tx(outcome.tx.id, outcome.status, outcome.tx_hash, outcome.block_number)

    def pending(self) -> list[PendingTx]:
        return [
            PendingTx(
                nonce=row.nonce,
                call=Call(row.to_address, row.data, row.gas),
                kind=row.kind,
                job_ids=list(row.job_ids),
                attempts=list(row.attempts),
                id=row.id,
            )
            for row in self.store.txs([TX_PENDING], sender=self.sender)
        ]

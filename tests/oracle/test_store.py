"""The store, on SQLite and on a real PostgreSQL server (the `db_url` fixture runs every
test on both): migrations, ingestion and its cursor, the job state machine, the verdict
and signature invariants, transaction records, and rollback after a reorg."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, inspect, text

from neurotoken.chain.fees import Fees
from neurotoken.chain.sender import MINED, Attempt, Call, Outcome, PendingTx
from oracle import store as store_module
from oracle.errors import ConflictingVerdictError, StoreError
from oracle.store import (
    EXPIRED,
    SCHEMA_VERSION,
    SEEN,
    SETTLED,
    SIGNED,
    SUBMITTED,
    TX_MINED,
    TX_PENDING,
    VERIFIED,
    VERIFYING,
    ChainEvent,
    Store,
    StoreJournal,
    Unsubmitted,
)

ROOT = b"\x11" * 32
OTHER_ROOT = b"\x22" * 32
SPEC_HASH = "0x" + "5e" * 32
ORACLE = "0x" + "ab" * 20
PEER = "0x" + "cd" * 20


def h(n: int) -> str:
    return "0x" + f"{n:064x}"


def posted(
    job_id: int, block: int, index: int = 0, accept_by: int = 1, deliver_by: int = 2
) -> ChainEvent:
    return ChainEvent(
        block, index, h(block), h(1000 + block), "JobPosted", job_id,
        {"jobId": job_id, "specHash": SPEC_HASH, "specURI": f"file:///specs/{job_id}.json",
         "shardCount": 16, "challengeCount": 4, "verdictBy": 10_000, "client": ORACLE,
         "provider": ORACLE, "paymentNtk": 1, "collateralNtk": 1, "acceptBy": accept_by,
         "deliverBy": deliver_by},
    )  # fmt: skip


def ended(name: str, job_id: int, block: int, index: int = 0) -> ChainEvent:
    """A log that ends a job before any result (JobCancelled, JobExpired, JobDefaulted)."""
    return ChainEvent(
        block, index, h(block), h(4000 + block), name, job_id,
        {"jobId": job_id, "client": ORACLE, "refundNtk": 1},
    )  # fmt: skip


def submitted(job_id: int, block: int, root: bytes = ROOT, index: int = 0) -> ChainEvent:
    return ChainEvent(
        block, index, h(block), h(2000 + block), "ResultSubmitted", job_id,
        {"jobId": job_id, "provider": PEER, "resultRoot": "0x" + root.hex(), "shardCount": 16,
         "seedBlock": block + 1, "bundleURI": "http://bundles"},
    )  # fmt: skip


def paid(job_id: int, block: int, index: int = 0) -> ChainEvent:
    return ChainEvent(
        block, index, h(block), h(3000 + block), "JobPaid", job_id,
        {"jobId": job_id, "provider": PEER, "providerNtk": 1, "feeNtk": 0},
    )  # fmt: skip


def ingest(store: Store, start: int, end: int, *events: ChainEvent) -> list[int]:
    hashes = {ev.block_number: ev.block_hash for ev in events} | {end: h(end)}
    return store.ingest(start, end, list(events), hashes)


def test_migrate__twice__is_idempotent_and_creates_every_table(store: Store) -> None:
    assert store.migrate() == SCHEMA_VERSION == 3
    assert store.version() == SCHEMA_VERSION
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"schema_version", "meta", "blocks", "events", "specs", "jobs", "verdicts",
            "signatures", "txs", "tx_attempts"} <= tables  # fmt: skip


def test_bind_identity__other_market__is_refused(store: Store) -> None:
    store.bind_identity(31337, "0xAbC")
    store.bind_identity(31337, "0xabc")  # same market, any case
    with pytest.raises(StoreError, match="belongs to market"):
        store.bind_identity(31337, "0xdef")
    with pytest.raises(StoreError, match="belongs to chain_id"):
        store.bind_identity(1, "0xabc")


def test_ingest__moves_cursor_and_creates_seen_job(store: Store) -> None:
    assert store.cursor() is None
    touched = ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    assert touched == [1]
    assert store.cursor() == 10
    assert store.block_hash(7) == h(7) and store.block_hash(10) == h(10)
    job = store.job(1)
    assert job is not None and job.state == SEEN and job.result_root == ROOT
    assert job.seed_block == 8 and job.bundle_uri == "http://bundles"
    spec = store.spec(1)
    assert spec is not None and spec.challenge_count == 4 and spec.verdict_by == 10_000


def test_ingest__out_of_order_range__is_refused_and_changes_nothing(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3))
    with pytest.raises(StoreError, match="cursor is at 10"):
        ingest(store, 12, 20, submitted(1, 15))
    assert store.cursor() == 10
    assert store.job(1) is None


def test_transitions__repeated__are_no_ops(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    assert store.start_verifying(1, ROOT)
    assert not store.start_verifying(1, ROOT)  # already verifying
    assert not store.start_verifying(1, OTHER_ROOT)
    verdict = store.record_verdict(1, ROOT, True, [], [1, 2, 3, 4])
    again = store.record_verdict(1, ROOT, True, [], [1, 2, 3, 4])
    assert verdict == again
    job = store.job(1)
    assert job is not None and job.state == VERIFIED and job.attempts == 1
    assert store.mark_signed(1, ROOT)
    job = store.job(1)
    assert job is not None and job.state == SIGNED
    assert not store.mark_signed(1, ROOT)


def test_record_verdict__second_different_decision__keeps_the_first(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    first = store.record_verdict(1, ROOT, False, ["RECOMPUTE_MISMATCH"], [3])
    second = store.record_verdict(1, ROOT, True, [], [3])
    assert first.accepted is False and second.accepted is False
    stored = store.verdict(1, ROOT)
    assert stored is not None and stored.reasons == ["RECOMPUTE_MISMATCH"]


def test_record_signature__own_conflicting_verdict__is_refused(store: Store) -> None:
    sig = b"\x01" * 65
    assert store.record_signature(1, ROOT, ORACLE, True, sig, own=True)
    assert not store.record_signature(1, ROOT, ORACLE, True, sig, own=True)
    with pytest.raises(ConflictingVerdictError):
        store.record_signature(1, ROOT, ORACLE, False, b"\x02" * 65, own=True)
    # the same oracle may sign another root of the same job (a reorged commitment)
    assert store.record_signature(1, OTHER_ROOT, ORACLE, False, b"\x03" * 65, own=True)
    rows = store.signatures(1, ROOT)
    assert [(r.signer, r.accepted, r.signature) for r in rows] == [(ORACLE, True, sig)]


def test_record_signature__peer_equivocation__keeps_the_first(store: Store) -> None:
    assert store.record_signature(1, ROOT, PEER, False, b"\x04" * 65, own=False)
    with pytest.raises(ConflictingVerdictError):
        store.record_signature(1, ROOT, PEER, True, b"\x05" * 65, own=False)
    assert [r.accepted for r in store.signatures(1, ROOT, own=False)] == [False]


def test_recover__verifying_jobs__go_back_to_seen(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7), posted(2, 8), submitted(2, 9))
    assert store.start_verifying(1, ROOT)
    assert store.recover() == 1
    assert store.counts_by_state()[SEEN] == 2
    assert store.counts_by_state()[VERIFYING] == 0


def test_retry_later__sets_backoff_and_reasons(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    store.start_verifying(1, ROOT)
    assert store.retry_later(1, ROOT, 1234.5, ["UNAVAILABLE: x"])
    job = store.job(1)
    assert job is not None and job.state == SEEN and job.next_attempt_at == 1234.5
    assert job.reasons is not None and "UNAVAILABLE" in job.reasons


def _attempt(tag: int, fee: int = 10) -> Attempt:
    return Attempt(hash=h(tag), raw=bytes([tag]) * 8, fees=Fees(fee, 1), sent_block=5)


def test_tx_records__written_before_broadcast__survive_and_move_jobs(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    store.record_verdict(1, ROOT, True, [], [1])
    store.mark_signed(1, ROOT)
    tx_id = store.create_tx(ORACLE, 7, "settle", [1], PEER, b"\xaa\xbb", 90_000, _attempt(1))
    job = store.job(1)
    assert job is not None and job.state == SUBMITTED and job.tx_id == tx_id
    store.add_attempt(tx_id, _attempt(2, fee=20))
    (tx,) = store.txs([TX_PENDING], sender=ORACLE)
    assert tx.nonce == 7 and tx.data == b"\xaa\xbb" and tx.gas == 90_000
    assert [a.hash for a in tx.attempts] == [h(1), h(2)]
    assert store.max_nonce(ORACLE) == 7
    store.finish_tx(tx_id, TX_MINED, h(2), 11)
    assert store.txs([TX_PENDING]) == []
    assert store.settled_by_receipt(1, "paid", h(2), 11)
    assert not store.settled_by_receipt(1, "paid", h(2), 11)
    job = store.job(1)
    assert job is not None and job.state == SETTLED and not job.final


def test_store_journal__is_the_senders_journal__legacy_fees_kept(store: Store) -> None:
    """The store as `neurotoken.chain.sender.Journal`: a transaction opens with its first
    attempt (jobs to submitted), each replacement is added, `pending` gives them back with
    their fees (a legacy attempt's gas price too, told by its raw bytes), `finish` ends it."""
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    store.record_verdict(1, ROOT, True, [], [1])
    store.mark_signed(1, ROOT)
    journal = StoreJournal(store, ORACLE)
    tx = PendingTx(4, Call(PEER, b"\x01", 50_000), "settle", [1])
    first = Attempt(h(1), b"\x02" + b"\x00" * 7, Fees(30, 2), sent_block=9)
    tx.attempts.append(first)
    journal.record(tx, first)
    assert tx.id is not None
    job = store.job(1)
    assert job is not None and job.state == SUBMITTED and job.tx_id == tx.id
    legacy = Attempt(h(2), b"\xf8" + b"\x00" * 7, Fees(40, None), sent_block=10)
    tx.attempts.append(legacy)
    journal.record(tx, legacy)
    (back,) = journal.pending()
    assert (back.id, back.nonce, back.kind, back.job_ids) == (tx.id, 4, "settle", [1])
    assert back.call == Call(PEER, b"\x01", 50_000)
    assert back.attempts == [first, legacy] and back.highest == legacy
    journal.finish(Outcome(back, MINED, h(2), 12))
    assert journal.pending() == []
    (row,) = store.txs()
    assert (row.status, row.mined_hash, row.block_number) == (TX_MINED, h(2), 12)


def test_settlement_event__makes_job_final(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    ingest(store, 11, 12, paid(1, 12))
    job = store.job(1)
    assert job is not None and job.state == SETTLED and job.final and job.outcome == "paid"


def test_expire__then_settlement_event__settles(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    assert store.expire(1, ["VERDICT_DEADLINE_PASSED"])
    assert store.job(1).state == EXPIRED  # type: ignore[union-attr]
    ingest(store, 11, 12, paid(1, 12))
    assert store.job(1).state == SETTLED  # type: ignore[union-attr]


def test_rollback__removes_reorged_submission_but_keeps_verdict_and_signature(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3))
    ingest(store, 11, 20, submitted(1, 15))
    store.record_verdict(1, ROOT, True, [], [1])
    store.record_signature(1, ROOT, ORACLE, True, b"\x01" * 65, own=True)
    store.mark_signed(1, ROOT)
    report = store.rollback(10)
    assert report.jobs_touched == [1] and report.events_removed == 1
    assert store.cursor() == 10
    assert store.block_hash(15) is None and store.block_hash(10) == h(10)
    assert store.job(1) is None  # nothing on chain says it was submitted any more
    assert store.spec(1) is not None  # the posting is still there
    assert store.verdict(1, ROOT) is not None
    assert len(store.signatures(1, ROOT, own=True)) == 1
    # the same commitment comes back in the new branch: the job is seen again
    ingest(store, 11, 21, submitted(1, 18))
    job = store.job(1)
    assert job is not None and job.state == SEEN and job.submitted_block == 18


def test_rollback__of_settlement__reopens_the_job(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    store.record_verdict(1, ROOT, True, [], [1])
    ingest(store, 11, 20, paid(1, 14))
    assert store.job(1).final  # type: ignore[union-attr]
    store.rollback(12)
    job = store.job(1)
    assert job is not None and job.state == SEEN and not job.final and job.outcome is None


def test_rollback__mined_tx_above_ancestor__is_pending_again(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    store.record_verdict(1, ROOT, True, [], [1])
    store.mark_signed(1, ROOT)
    tx_id = store.create_tx(ORACLE, 0, "settle", [1], PEER, b"", 1, _attempt(1))
    store.finish_tx(tx_id, TX_MINED, h(1), 12)
    store.settled_by_receipt(1, "paid", h(1), 12)
    ingest(store, 11, 13, paid(1, 12))
    store.rollback(11)
    (tx,) = store.txs([TX_PENDING])
    assert tx.id == tx_id and tx.block_number is None
    job = store.job(1)
    assert job is not None and job.state == SUBMITTED and not job.final


def test_ingest__new_root_after_reorg__restarts_the_job(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 3), submitted(1, 7))
    store.record_verdict(1, ROOT, True, [], [1])
    store.rollback(6)
    ingest(store, 7, 12, submitted(1, 9, root=OTHER_ROOT))
    job = store.job(1)
    assert job is not None and job.state == SEEN and job.result_root == OTHER_ROOT
    assert store.verdict(1, OTHER_ROOT) is None


def test_unsubmitted_past__posted_jobs_past_acceptance_with_no_result_or_end(store: Store) -> None:
    ingest(
        store, 1, 20,
        posted(1, 2, accept_by=100, deliver_by=200),
        posted(2, 3, accept_by=150, deliver_by=250),
        posted(3, 4, accept_by=100, deliver_by=200),
        posted(4, 5, accept_by=100, deliver_by=200),
        posted(5, 6, accept_by=100, deliver_by=200),
        submitted(3, 7),
        ended("JobCancelled", 4, 8),
        ended("JobExpired", 5, 9),
    )  # fmt: skip
    assert store.unsubmitted_past(100) == []  # the deadline is not passed at it
    assert store.unsubmitted_past(101) == [Unsubmitted(1, 100, 200)]
    assert [u.job_id for u in store.unsubmitted_past(151)] == [1, 2]
    ingest(store, 21, 30, ended("JobDefaulted", 1, 25))
    assert [u.job_id for u in store.unsubmitted_past(10**9)] == [2]
    spec = store.spec(2)
    assert spec is not None and (spec.accept_by, spec.deliver_by) == (150, 250)


def test_rollback__of_a_closing_log__opens_the_job_again(store: Store) -> None:
    ingest(store, 1, 10, posted(1, 2, accept_by=100, deliver_by=200))
    ingest(store, 11, 20, ended("JobExpired", 1, 15))
    assert store.unsubmitted_past(101) == []
    store.rollback(12)
    assert store.unsubmitted_past(101) == [Unsubmitted(1, 100, 200)]
    store.rollback(1)  # the posting itself is gone
    assert store.unsubmitted_past(101) == []


def test_migration_2__on_a_version_1_store__adds_and_fills_the_deadlines(db_url: str) -> None:
    first = Store(db_url)
    first.migrate()
    ingest(first, 1, 10, posted(1, 2, accept_by=100, deliver_by=200))
    with first.engine.begin() as conn:  # back to the version 1 layout, data kept
        for column in ("accept_by", "deliver_by", "closed"):
            conn.execute(text(f"ALTER TABLE specs DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE verdicts DROP COLUMN seed"))
        conn.execute(delete(store_module.schema_version).where(
            store_module.schema_version.c.version >= 2))  # fmt: skip
    first.close()
    store = Store(db_url)
    assert store.version() == 1
    assert store.migrate() == 3
    assert store.unsubmitted_past(101) == [Unsubmitted(1, 100, 200)]
    assert store.migrate() == 3  # idempotent
    store.close()


def test_migration_3__verdicts_before_seeds__keep_no_seed_and_new_ones_record_it(
    db_url: str,
) -> None:
    first = Store(db_url)
    first.migrate()
    ingest(first, 1, 10, posted(1, 2), submitted(1, 7), posted(2, 3), submitted(2, 8))
    first.record_verdict(1, ROOT, True, [], [1])
    with first.engine.begin() as conn:  # back to the version 2 layout, data kept
        conn.execute(text("ALTER TABLE verdicts DROP COLUMN seed"))
        conn.execute(delete(store_module.schema_version).where(
            store_module.schema_version.c.version == 3))  # fmt: skip
    first.close()
    store = Store(db_url)
    assert store.version() == 2
    assert store.migrate() == 3
    old = store.verdict(1, ROOT)
    assert old is not None and old.accepted and old.seed is None  # never signed again
    new = store.record_verdict(2, ROOT, False, ["RECOMPUTE_MISMATCH"], [3], seed=b"\x5d" * 32)
    assert new.seed == b"\x5d" * 32
    store.close()

"""Settlement and the job records it reads (`oracle.settlement.Settlement`), without a node:
the chain's answers are scripted, the store is real (SQLite).

A record the node cannot give (`JobRecordError`: its logs lag its state, or a reorg) is
transient trouble: logged, the job left as it is, tried again next tick, never a crash, and
never a reason to send. A record that differs from what the oracle verified is not sent. A
settlement that would revert `MarketJobNotFound` (the job has ended: someone settled it
first) is the benign end of a race: the job is recorded settled, at info level."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError

from neurotoken.chain.fees import Fees
from neurotoken.chain.sender import MINED, REVERTED, Attempt, Call, Outcome, PendingTx, Sender
from neurotoken.market.job import OnChainJob
from neurotoken.market.records import JobRecordError
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain
from oracle.chain import MarketChain
from oracle.keys import OracleKey
from oracle.metrics import Metrics
from oracle.sending import fee_policy
from oracle.settings import DEFAULT_ABI_PATH, OracleSettings
from oracle.settlement import Settlement
from oracle.store import SETTLED, SIGNED, SUBMITTED, TX_REVERTED, Store, StoreJournal
from tests.oracle.test_store import ROOT, ingest, paid, posted, submitted

MARKET = Web3.to_checksum_address("0x" + "ab" * 20)
KEY = OracleKey(Account.from_key("0x" + "43" * 32))
JOB = 1

# the job as the chain has it once its result is in: what `submitted(1, 7)` ingests
ONCHAIN = OnChainJob(
    job_id=JOB,
    client=Web3.to_checksum_address("0x" + "c1" * 20),
    payment_ntk=100,
    provider=Web3.to_checksum_address("0x" + "cd" * 20),
    collateral_ntk=400,
    spec_hash=b"\x5e" * 32,
    result_root=ROOT,
    state=JobState.SUBMITTED,
    accept_by=1,
    deliver_by=2,
    verdict_by=10_000,
    seed_block=8,
    shard_count=16,
    challenge_count=4,
    fee_bps=250,
    oracle_epoch=1,
    threshold=2,
)


class Records:
    """The chain's answers to `get_job`: JobRecordError while `lagging`, else `job`."""

    def __init__(self) -> None:
        self.lagging = True
        self.job = ONCHAIN
        self.reads = 0
        self.from_blocks: set[int | None] = set()

    def __call__(
        self, job_id: int, block: Any = "latest", *, from_block: int | None = None
    ) -> OnChainJob:
        self.reads += 1
        self.from_blocks.add(from_block)
        if self.lagging:
            raise JobRecordError(f"job {job_id}: the record does not hash to the stored digest")
        return replace(self.job, job_id=job_id)


class Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == name]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'oracle.sqlite'}")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def records() -> Records:
    return Records()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def settlement(
    store: Store, records: Records, events: Events, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settlement]:
    chain = MarketChain("http://127.0.0.1:9", MARKET, DEFAULT_ABI_PATH)  # no node behind it
    monkeypatch.setattr(chain, "get_job", records)
    journal = StoreJournal(store, KEY.address)
    settings = OracleSettings(market=MARKET)
    log = logging.getLogger("tests.oracle.settle_records")
    log.setLevel(logging.DEBUG)
    log.addHandler(events)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        yield Settlement(
            store=store,
            chain=chain,
            key=KEY,
            sender=Sender(chain.w3, KEY, journal, fee_policy(settings), chain_id=31337),
            domain=MarketDomain(31337, MARKET),
            settings=settings,
            metrics=Metrics(),
            session=requests.Session(),
            peer_pool=pool,
            log=log,
        )
    finally:
        log.removeHandler(events)
        pool.shutdown()


def signed_job(store: Store) -> None:
    """Job 1 ingested, verified (accept) and signed by this oracle."""
    ingest(store, 1, 10, posted(JOB, 3), submitted(JOB, 7))
    store.record_verdict(JOB, ROOT, True, [], [1, 2, 3, 4], seed=b"\x99" * 32)
    store.record_signature(JOB, ROOT, KEY.address, True, b"\x01" * 65, own=True)
    assert store.mark_signed(JOB, ROOT)


def sent(store: Store, status: str) -> Outcome:
    """A settlement of job 1 recorded (the job goes `submitted`) and ended with `status`."""
    attempt = Attempt(hash="0x" + "aa" * 32, raw=b"\x02" * 8, fees=Fees(10, 1), sent_block=11)
    tx_id = store.create_tx(KEY.address, 0, "settle", [JOB], MARKET, b"\x01", 90_000, attempt)
    store.finish_tx(tx_id, status, attempt.hash, 12)
    tx = PendingTx(0, Call(MARKET, b"\x01", 90_000), "settle", [JOB], [attempt], id=tx_id)
    return Outcome(tx, status, attempt.hash, 12)


def test_reverted_while_the_record_is_unreadable__job_kept__reconciled_next_tick(
    settlement: Settlement, store: Store, records: Records, events: Events
) -> None:
    signed_job(store)
    outcome = sent(store, TX_REVERTED)
    assert store.job(JOB).state == SUBMITTED  # type: ignore[union-attr]
    settlement.apply_outcomes([replace(outcome, status=REVERTED)])  # the node lags: no crash
    row = store.job(JOB)
    assert row is not None and row.state == SUBMITTED and not row.final
    unreadable = events.named("job_record_unavailable")
    assert unreadable and all(r.levelno == logging.WARNING for r in unreadable)
    assert settlement.metrics.counters["oracle_rpc_errors_total"] >= 1
    settlement.apply_outcomes([])  # still lagging: still waiting
    assert store.job(JOB).state == SUBMITTED  # type: ignore[union-attr]
    # the node catches up: the job was settled by someone else's transaction
    records.lagging = False
    records.job = replace(ONCHAIN, state=JobState.PAID)
    settlement.apply_outcomes([])
    row = store.job(JOB)
    assert row is not None and (row.state, row.outcome) == (SETTLED, "paid")
    assert events.named("settled_by_other")
    assert records.from_blocks == {3}  # its events searched for from its JobPosted's block


def test_reverted__job_still_open__back_to_signed_once_the_record_is_readable(
    settlement: Settlement, store: Store, records: Records
) -> None:
    signed_job(store)
    outcome = sent(store, TX_REVERTED)
    settlement.apply_outcomes([replace(outcome, status=REVERTED)])
    assert store.job(JOB).state == SUBMITTED  # type: ignore[union-attr]
    records.lagging = False  # open, awaiting its verdict: this oracle may settle it again
    settlement.apply_outcomes([])
    assert store.job(JOB).state == SIGNED  # type: ignore[union-attr]


def test_mined_while_the_record_is_unreadable__settled_by_receipt__outcome_from_the_log(
    settlement: Settlement, store: Store
) -> None:
    signed_job(store)
    outcome = sent(store, MINED)
    settlement.apply_outcomes([outcome])  # mined, not reverted: it settled the job
    row = store.job(JOB)
    assert row is not None and row.state == SETTLED and row.outcome is None
    assert row.settled_tx == outcome.tx_hash
    ingest(store, 11, 15, paid(JOB, 12))  # which way, the confirmed JobPaid says
    row = store.job(JOB)
    assert row is not None and row.final and row.outcome == "paid"


def test_current_record__only_the_record_of_what_was_verified__is_sent_with(
    settlement: Settlement, store: Store, records: Records, events: Events
) -> None:
    signed_job(store)
    row = store.job(JOB)
    assert row is not None
    assert settlement.current_record(row) is None  # unreadable: nothing to send with
    records.lagging = False
    assert settlement.current_record(row) == ONCHAIN
    for differs in (  # a reorg under way: the head is not what the confirmed logs said
        replace(ONCHAIN, result_root=keccak(ROOT)),
        replace(ONCHAIN, seed_block=ONCHAIN.seed_block + 1),
        replace(ONCHAIN, state=JobState.ACCEPTED, result_root=bytes(32), seed_block=0),
    ):
        records.job = differs
        assert settlement.current_record(row) is None
    assert len(events.named("record_differs")) == 3
    assert store.job(JOB).state == SIGNED  # type: ignore[union-attr]
    records.job = replace(ONCHAIN, state=JobState.REJECTED)  # ended: settled by another
    assert settlement.current_record(row) is None
    row = store.job(JOB)
    assert row is not None and (row.state, row.outcome) == (SETTLED, "rejected")


def test_settlement_would_revert_job_not_found__recorded_settled__logged_as_benign(
    settlement: Settlement,
    store: Store,
    records: Records,
    events: Events,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signed_job(store)
    records.lagging = False
    data = settlement.chain.settle_data(ONCHAIN, True, [b"\x01" * 65, b"\x02" * 65])
    records.job = replace(ONCHAIN, state=JobState.PAID)  # another settlement landed first
    selector = keccak(text="MarketJobNotFound(uint256)")[:4]
    not_found = "0x" + (selector + encode(["uint256"], [JOB])).hex()

    def estimate_gas(_: Any) -> int:
        raise ContractCustomError(not_found, data=not_found)

    monkeypatch.setattr(settlement.chain.w3.eth, "estimate_gas", estimate_gas)
    assert settlement._estimate(data, [JOB]) is None  # nothing goes out
    (refused,) = events.named("settlement_would_revert")
    assert refused.levelno == logging.INFO and refused.__dict__["job_ended"] is True
    assert str(refused.__dict__["error"]).startswith("MarketJobNotFound")
    row = store.job(JOB)
    assert row is not None and (row.state, row.outcome) == (SETTLED, "paid")

"""`oracle.chain` without a node: a JobPosted log (its record a struct) decodes into what the
store keeps of a posted job, and every call the oracle builds carries the record it is given,
word for word (a stale or altered one would revert `MarketJobRecordMismatch`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3

from neurotoken.market.job import OnChainJob, fold
from neurotoken.market.states import JobState
from oracle.chain import RECORD_KEYS, MarketChain
from oracle.settings import DEFAULT_ABI_PATH
from oracle.store import Store

MARKET = Web3.to_checksum_address("0x" + "ab" * 20)
CLIENT = Web3.to_checksum_address("0x" + "c1" * 20)
PROVIDER = Web3.to_checksum_address("0x" + "9e" * 20)
RECORD_TYPE = "(uint256,uint256,uint256,bytes32,bytes32)"

POSTED = OnChainJob(
    job_id=7,
    client=CLIENT,
    payment_ntk=100 * 10**18,
    provider="0x" + "00" * 20,
    collateral_ntk=400 * 10**18,
    spec_hash=b"\x5e" * 32,
    result_root=b"\x00" * 32,
    state=JobState.POSTED,
    accept_by=1_700_003_600,
    deliver_by=1_700_007_200,
    verdict_by=1_700_010_800,
    seed_block=0,
    shard_count=16,
    challenge_count=4,
    fee_bps=250,
    oracle_epoch=3,
    threshold=2,
)
SUBMITTED = replace(
    POSTED,
    provider=PROVIDER,
    state=JobState.SUBMITTED,
    result_root=b"\x11" * 32,
    seed_block=1234,
)


@pytest.fixture
def chain() -> MarketChain:
    """A MarketChain over a URL nothing listens on: nothing here talks to a node."""
    return MarketChain("http://127.0.0.1:9", MARKET, DEFAULT_ABI_PATH)


def posted_log(chain: MarketChain, job: OnChainJob, spec_uri: str) -> dict[str, Any]:
    abi = next(i for i in chain.abi if i.get("type") == "event" and i["name"] == "JobPosted")
    return {
        "address": MARKET,
        "topics": [
            HexBytes(event_abi_to_log_topic(abi)),  # type: ignore[arg-type]
            HexBytes(job.job_id.to_bytes(32, "big")),
            HexBytes(bytes(12) + bytes.fromhex(job.client[2:])),
            HexBytes(bytes(32)),
        ],
        "data": HexBytes(encode([RECORD_TYPE, "string"], [job.record(), spec_uri])),
        "blockNumber": 40,
        "logIndex": 2,
        "transactionIndex": 0,
        "transactionHash": HexBytes(b"\x77" * 32),
        "blockHash": HexBytes(b"\x40" * 32),
        "removed": False,
    }


def test_job_posted__record_decoded__words_kept__fields_unpacked_as_before(
    chain: MarketChain, tmp_path: Path
) -> None:
    ev = chain.decode_log(posted_log(chain, POSTED, "file:///specs/7.json"))  # type: ignore[arg-type]
    assert ev is not None and ev.name == "JobPosted" and ev.job_id == 7
    d = ev.data
    assert fold(7, [("JobPosted", d)]) == POSTED  # the first record, whole
    assert (d["client"], d["specURI"]) == (CLIENT, "file:///specs/7.json")
    assert (d["specHash"], d["paymentNtk"], d["collateralNtk"]) == (
        "0x" + "5e" * 32,
        100 * 10**18,
        400 * 10**18,
    )
    assert (d["shardCount"], d["challengeCount"]) == (16, 4)
    assert (d["acceptBy"], d["deliverBy"], d["verdictBy"]) == (
        1_700_003_600,
        1_700_007_200,
        1_700_010_800,
    )
    assert (d["feeBps"], d["oracleEpoch"], d["threshold"]) == (250, 3, 2)
    assert json.loads(json.dumps(d)) == d  # what ingestion stores, as it stores it
    # the store reads it as it read the old unpacked event
    store = Store(f"sqlite:///{tmp_path / 'oracle.sqlite'}")
    store.migrate()
    try:
        store.ingest(40, 40, [ev], {40: ev.block_hash})
        spec = store.spec(7)
        assert spec is not None
        assert (spec.spec_hash, spec.spec_uri) == (b"\x5e" * 32, "file:///specs/7.json")
        assert (spec.shard_count, spec.challenge_count) == (16, 4)
        assert (spec.accept_by, spec.deliver_by, spec.verdict_by) == (
            1_700_003_600,
            1_700_007_200,
            1_700_010_800,
        )
    finally:
        store.close()


def called(chain: MarketChain, data: bytes) -> tuple[str, dict[str, Any]]:
    fn, args = chain.contract.decode_function_input(data)
    return str(fn.fn_name), dict(args)


def words(raw: dict[str, Any]) -> tuple[Any, ...]:
    """A decoded IComputeMarket.Job argument as the five words `OnChainJob.record` gives."""
    return tuple(raw[k] for k in RECORD_KEYS)


def test_settlement_and_upkeep_calls__carry_the_record_given__word_for_word(
    chain: MarketChain,
) -> None:
    sigs = [b"\x01" * 65, b"\x02" * 65]
    name, args = called(chain, chain.settle_data(SUBMITTED, True, sigs))
    assert name == "settle" and args["jobId"] == 7 and args["accepted"] is True
    assert words(args["job"]) == SUBMITTED.record()
    assert [bytes(s) for s in args["signatures"]] == sigs

    other = replace(SUBMITTED, job_id=8, result_root=b"\x22" * 32)
    name, args = called(chain, chain.settle_batch_data([(SUBMITTED, True), (other, False)], sigs))
    assert name == "settleBatch"
    entries = [(e["jobId"], words(e["job"]), e["accepted"]) for e in args["entries"]]
    assert entries == [(7, SUBMITTED.record(), True), (8, other.record(), False)]

    upkeep = ((chain.fix_seed_data, "fixChallengeSeed"), (chain.expire_data, "expireJob"))
    for build, expected in upkeep:
        name, args = called(chain, build(SUBMITTED))
        assert name == expected and args["jobId"] == 7
        assert words(args["job"]) == SUBMITTED.record()
    # the record given is the record sent: a stale one (the Posted record) is not refreshed
    name, args = called(chain, chain.expire_data(POSTED))
    assert words(args["job"]) == POSTED.record() != SUBMITTED.record()

"""Stuck transactions of the agent on a real anvil node: automine off, a background miner, and a
base fee pinned above what the agent's first attempt pays. The agent must re-sign at the same
nonce with higher fees (never above its cap), record every new hash before broadcasting it, and
have the job accepted exactly once; a restart takes over a transaction left pending. (The fee
rule and the sender's answers to each node reply are unit-tested in tests/chain.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxParams, Wei

from neurotoken.chain.answers import SendResult, classify
from neurotoken.chain.fees import GWEI
from neurotoken.chain.sender import PendingTx, Sender
from neurotoken.errors import ConfigError
from neurotoken.provider import account as acct
from neurotoken.provider.agent import ProviderAgent, StepReport
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.errors import (
    TxTimeoutError,
)
from neurotoken.provider.policy import Policy
from neurotoken.provider.sending import TxSettings
from neurotoken.provider.state import JobStatus
from tests.agent.conftest import STAKE, Jobs

AgentFactory = Callable[..., ProviderAgent]
UNDERPRICED = SendResult.UNDERPRICED


class Miner:
    """Mines a block every `interval` seconds on an automine-off node, unless `paused`. With
    `trap` set to an address it mines nothing until that account has a pending transaction,
    then keeps every next block's base fee at twice that transaction's max fee, so that it
    cannot be included (anvil then drops it from its pool)."""

    def __init__(self, rpc_url: str, interval: float = 0.3) -> None:
        self.w3 = Web3(HTTPProvider(rpc_url))
        self.interval = interval
        self.paused = False
        self.trap: str | None = None
        self.first: dict[str, Any] | None = None
        self.base_fee: int | None = None
        self.stopped = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def rpc(self, method: str, *params: Any) -> Any:
        answer = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in answer, answer
        return answer.get("result")

    def _pending_of(self, sender: str) -> dict[str, Any] | None:
        nonce = self.w3.eth.get_transaction_count(sender, "latest")  # type: ignore[arg-type]
        tx = self.rpc("eth_getTransactionBySenderAndNonce", sender, hex(nonce))
        return tx if tx and tx.get("blockNumber") is None else None

    def _tick(self) -> None:
        if self.trap is not None:
            tx = self._pending_of(self.trap)
            if tx is None:
                return
            self.first = tx
            self.base_fee = 2 * int(tx["maxFeePerGas"], 16)
            self.trap = None
        if self.paused:
            return
        if self.base_fee is not None:
            self.rpc("anvil_setNextBlockBaseFeePerGas", hex(self.base_fee))
        self.rpc("evm_mine")

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._tick()
            except BaseException as exc:  # reported by the test, not lost in the thread
                self.errors.append(exc)
                return
            time.sleep(self.interval)


@contextmanager
def mining(rpc_url: str) -> Iterator[Miner]:
    miner = Miner(rpc_url)
    miner.rpc("evm_setAutomine", False)
    miner.thread.start()
    try:
        yield miner
    finally:
        miner.stopped.set()
        miner.thread.join(timeout=10)
        miner.rpc("evm_setAutomine", True)
    assert not miner.errors, miner.errors


def accepted_logs(market: Any, job_id: int) -> list[Any]:
    stop = market.chain_manager.blocks.height + 1
    return list(market.JobAccepted.range(0, stop, search_topics={"jobId": job_id}))


def spy_accept_hashes(agent: ProviderAgent, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every accept hash the agent writes to its state file, in order."""
    written: list[str] = []
    update = agent.state.update

    def spy(job_id: int, **fields: Any) -> Any:
        if fields.get("accept_tx"):
            written.append(str(fields["accept_tx"]))
        return update(job_id, **fields)

    monkeypatch.setattr(agent.state, "update", spy)
    return written


def spy_broadcasts(client: MarketClient, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every transaction the client hands to the node (decoded), in order; still sent."""
    seen: list[dict[str, Any]] = []
    send = client.w3.eth.send_raw_transaction

    def spy(raw: Any) -> Any:
        seen.append(dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()))
        return send(raw)

    monkeypatch.setattr(client.w3.eth, "send_raw_transaction", spy)
    return seen


def tx_hash_of(log: Any) -> str:
    return HexBytes(log.transaction_hash).to_0x_hex()


def landed_once(market: Any, client: MarketClient, job_id: int) -> dict[str, Any]:
    """The one acceptance of `job_id` on chain, as the transaction that made it."""
    (log,) = accepted_logs(market, job_id)
    return dict(client.w3.eth.get_transaction(tx_hash_of(log)))  # type: ignore[arg-type]


def test_accept__stuck_after_the_base_fee_rose__is_replaced_and_lands_once(
    farm: MarketClient,
    market: Any,
    jobs: Jobs,
    make_agent: AgentFactory,
    rpc_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    farm.tx_settings = TxSettings(receipt_timeout_s=60, stuck_after_blocks=3)
    agent = make_agent()
    written = spy_accept_hashes(agent, monkeypatch)
    sent = spy_broadcasts(farm, monkeypatch)
    report = StepReport()
    with mining(rpc_url) as miner:
        agent.scan()
        miner.trap = farm.address
        agent.decide(report)
    assert report.accepted == [job_id]
    assert miner.first is not None
    first_hash = str(miner.first["hash"])

    landed = landed_once(market, farm, job_id)
    landed_hash = HexBytes(landed["hash"]).to_0x_hex()
    assert written[0] == first_hash and len(set(written)) >= 2  # on_sent heard of both
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    assert record.accept_tx == written[-1] == landed_hash != first_hash
    assert {tx["nonce"] for tx in sent} == {int(miner.first["nonce"], 16)} == {landed["nonce"]}
    assert sent[0]["maxFeePerGas"] == int(miner.first["maxFeePerGas"], 16)
    assert landed["maxFeePerGas"] >= sent[0]["maxFeePerGas"] * 125 // 100
    assert landed["maxPriorityFeePerGas"] >= sent[0]["maxPriorityFeePerGas"] * 125 // 100
    with pytest.raises(TransactionNotFound):
        farm.w3.eth.get_transaction_receipt(first_hash)  # type: ignore[arg-type]


def test_accept__fee_cap__no_attempt_above_it__and_after_a_restart_accepted_once(
    farm: MarketClient,
    market: Any,
    jobs: Jobs,
    make_agent: AgentFactory,
    rpc_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    sent = spy_broadcasts(farm, monkeypatch)
    with mining(rpc_url) as miner:
        # What web3 will ask for: the tip plus twice the latest base fee (nothing mines yet).
        base = int(farm.w3.eth.get_block("latest")["baseFeePerGas"])
        expected = int(farm.w3.eth.max_priority_fee) + 2 * base
        settings = TxSettings(
            receipt_timeout_s=6, stuck_after_blocks=2, max_fee_gwei=expected * 1.5 / GWEI
        )
        cap = settings.max_fee_wei
        assert cap is not None
        farm.tx_settings = settings
        agent = make_agent()
        written = spy_accept_hashes(agent, monkeypatch)
        agent.scan()
        miner.trap = farm.address
        with pytest.raises(TxTimeoutError, match="fee cap") as caught:
            agent.decide(StepReport())
        assert "raise --max-fee-gwei" in str(caught.value)
        assert len(set(written)) == 2  # the first attempt and one bump up to the cap, no more
        fees = [tx["maxFeePerGas"] for tx in sent]
        assert fees[0] < max(fees) <= cap  # bumped, never above the cap
        assert all(tx["maxPriorityFeePerGas"] <= cap for tx in sent)
        record = agent.state.get(job_id)
        assert record is not None and record.status is JobStatus.ACCEPTING
        assert record.accept_tx == written[-1]
        assert accepted_logs(market, job_id) == []
        agent.close()

        # Restarted with the default cap: whether the node kept the capped attempt (it is taken
        # over) or dropped it (the job is decided again), the job is accepted once.
        farm.tx_settings = TxSettings(receipt_timeout_s=60, stuck_after_blocks=2)
        again = make_agent()
        report = StepReport()
        again.reconcile(report)
        again.decide(report)

    landed = landed_once(market, farm, job_id)
    record = again.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    assert record.accept_tx == HexBytes(landed["hash"]).to_0x_hex()
    assert landed["nonce"] == sent[0]["nonce"] and landed["maxFeePerGas"] > cap


def leave_accept_pending(
    farm: MarketClient, make_agent: AgentFactory, miner: Miner
) -> tuple[ProviderAgent, str]:
    """An agent whose accept of the posted job stays pending (nothing mines) until it gives
    up; returns the agent and the hash of that pending attempt."""
    farm.tx_settings = TxSettings(receipt_timeout_s=2, stuck_after_blocks=2)
    agent = make_agent()
    agent.scan()
    miner.paused = True  # nothing mines: the accept stays pending, the agent gives up
    miner.trap = farm.address
    with pytest.raises(TxTimeoutError):
        agent.decide(StepReport())
    assert miner.first is not None
    return agent, str(miner.first["hash"])


def mine_once_adopted(miner: Miner, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Blocks resume once a (restarted) agent takes over a pending transaction, at a base
    fee the old attempt cannot pay; returns the hashes it took over."""
    adopted: list[str] = []
    adopt = Sender.adopt

    def adopt_then_mine(
        self: Sender, node_tx: Any, kind: str, head: int | None = None
    ) -> PendingTx:
        pending = adopt(self, node_tx, kind, head)
        adopted.append(HexBytes(node_tx["hash"]).to_0x_hex())
        miner.paused = False
        return pending

    monkeypatch.setattr(Sender, "adopt", adopt_then_mine)
    return adopted


def test_restart__accept_left_pending__is_taken_over_at_its_nonce_and_replaced(
    farm: MarketClient,
    market: Any,
    jobs: Jobs,
    make_agent: AgentFactory,
    rpc_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    with mining(rpc_url) as miner:
        agent, first_hash = leave_accept_pending(farm, make_agent, miner)
        assert miner.first is not None
        record = agent.state.get(job_id)
        assert record is not None and record.status is JobStatus.ACCEPTING
        assert record.accept_tx == first_hash and farm.tx_status(first_hash) == "pending"
        agent.close()

        # Restarted; blocks resume once it follows the recorded hash, at a base fee the old
        # attempt cannot pay: only a replacement at the same nonce can land.
        farm.tx_settings = TxSettings(receipt_timeout_s=60, stuck_after_blocks=2)
        mine_once_adopted(miner, monkeypatch)
        again = make_agent()
        written = spy_accept_hashes(again, monkeypatch)
        report = StepReport()
        again.reconcile(report)

    landed = landed_once(market, farm, job_id)
    landed_hash = HexBytes(landed["hash"]).to_0x_hex()
    record = again.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    assert written and record.accept_tx == written[-1] == landed_hash != first_hash
    assert landed["nonce"] == int(miner.first["nonce"], 16)
    assert landed["maxFeePerGas"] > int(miner.first["maxFeePerGas"], 16)


def test_restart__replacement_recorded_but_never_broadcast__the_pending_earlier_attempt_is_followed(
    farm: MarketClient,
    market: Any,
    jobs: Jobs,
    make_agent: AgentFactory,
    rpc_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash between recording a replacement and broadcasting it: the state file's latest
    hash is unknown to the node, which still holds the attempt before it. The restarted agent
    follows that attempt (and replaces it) instead of deciding the job again; a policy that
    now refuses the job must not leave an accepted job unworked."""
    acct.register(farm, STAKE)
    job_id = jobs.post()
    with mining(rpc_url) as miner:
        agent, first_hash = leave_accept_pending(farm, make_agent, miner)
        assert miner.first is not None
        never_sent = "0x" + "cd" * 32  # the replacement's hash, recorded, then the crash
        agent.state.update(job_id, accept_tx=never_sent)
        assert agent.state.tx_attempts(job_id, "accept_tx") == [first_hash, never_sent]
        assert farm.tx_status(never_sent) == "unknown" and farm.tx_status(first_hash) == "pending"
        agent.close()

        farm.tx_settings = TxSettings(receipt_timeout_s=60, stuck_after_blocks=2)
        adopted = mine_once_adopted(miner, monkeypatch)
        refusing = Policy(deadline_margin_s=60, min_price_per_shard_ntk=10**40)
        again = make_agent(policy=refusing)
        report = StepReport()
        again.reconcile(report)
        again.decide(report)

    assert adopted == [first_hash]
    landed = landed_once(market, farm, job_id)
    record = again.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    assert report.decisions == []  # never decided again, so never refused
    assert landed["nonce"] == int(miner.first["nonce"], 16)
    assert record.accept_tx == HexBytes(landed["hash"]).to_0x_hex()
    assert record.accept_tx in again.state.tx_attempts(job_id, "accept_tx")


def test_restart__accept_left_pending_whose_record_went_stale__is_followed_then_given_up(
    farm: MarketClient,
    market: Any,
    jobs: Jobs,
    make_agent: AgentFactory,
    rpc_url: str,
    provider2: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The state file holds an accept still pending on the node, signed with the job's record
    as it was then; another provider's acceptance lands first, so that record is stale. The
    restarted agent follows its transaction to its end (replacing it while it is stuck: its
    nonce must not block the account), the transaction reverts (MarketJobRecordMismatch), and
    the agent reads the job again and gives it up - no crash, no new accept."""
    acct.register(farm, STAKE)
    market.registerProvider(STAKE, "", sender=provider2)
    job_id = jobs.post()
    posted = farm.get_job(job_id).record()
    with mining(rpc_url) as miner:
        agent, first_hash = leave_accept_pending(farm, make_agent, miner)
        assert miner.first is not None and miner.base_fee is not None
        agent.close()

        # The rival's acceptance, paying what the pinned base fee asks, lands in the first
        # block the miner makes; ours (carrying the Posted record) cannot be included yet.
        rival = Account.from_key(provider2.private_key)
        fn = farm.market.functions.acceptJob(job_id, posted)
        params: TxParams = {
            "from": rival.address,
            "nonce": farm.w3.eth.get_transaction_count(rival.address, "pending"),
            "gas": 400_000,
            "maxFeePerGas": Wei(4 * miner.base_fee),
            "maxPriorityFeePerGas": Wei(miner.base_fee),
            "chainId": farm.chain_id,
        }
        rival_tx = fn.build_transaction(params)
        farm.w3.eth.send_raw_transaction(rival.sign_transaction(rival_tx).raw_transaction)

        farm.tx_settings = TxSettings(receipt_timeout_s=60, stuck_after_blocks=2)
        adopted = mine_once_adopted(miner, monkeypatch)
        lines: list[str] = []
        again = make_agent(echo=lines.append)
        sent = spy_broadcasts(farm, monkeypatch)
        report = StepReport()
        again.reconcile(report)
        again.decide(report)

    assert adopted == [first_hash]
    (log,) = accepted_logs(market, job_id)
    assert log.event_arguments["provider"] == provider2.address
    record = again.state.get(job_id)
    assert record is not None and record.status is JobStatus.GONE
    assert record.reason == f"taken by {provider2.address}"
    assert report.accepted == [] and report.decisions == []
    # what the agent sent were replacements of its old accept at its nonce, nothing new
    assert {tx["nonce"] for tx in sent} <= {int(miner.first["nonce"], 16)}
    farm_address = to_checksum_address(farm.address)
    assert farm.w3.eth.get_transaction_count(farm_address) == int(miner.first["nonce"], 16) + 1
    failed = [line for line in lines if f"earlier acceptJob({job_id}) failed" in line]
    assert failed and "MarketJobRecordMismatch" in failed[0]
    assert f"job {job_id}: giving it up - taken by {provider2.address} (found after a restart)" in (
        lines
    )


def rpc_error(message: str) -> Web3RPCError:
    return Web3RPCError(str({"code": -32003, "message": message}))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("transaction already imported", SendResult.KNOWN),  # anvil
        ("already known", SendResult.KNOWN),  # geth
        ("known transaction: 0xabc", SendResult.KNOWN),
        ("nonce too low", SendResult.NONCE_TOO_LOW),
        ("nonce too low: next nonce 5, tx nonce 4", SendResult.NONCE_TOO_LOW),
        ("replacement transaction underpriced", SendResult.UNDERPRICED),
        ("max fee per gas less than block base fee", SendResult.UNDERPRICED),  # anvil
        ("max fee per gas less than block base fee: maxFeePerGas: 1, baseFee: 7", UNDERPRICED),
        ("transaction underpriced", SendResult.UNDERPRICED),
        ("Insufficient funds for gas * price + value", SendResult.FUNDS),
        ("execution reverted", SendResult.ERROR),
    ],
)
def test_classify__node_answers(message: str, expected: SendResult) -> None:
    assert classify(rpc_error(message)) is expected


def test_classify__connection_failures__are_unknown_outcomes() -> None:
    assert classify(requests.ConnectionError("refused")) is SendResult.ERROR
    assert classify(TimeoutError()) is SendResult.ERROR


def test_tx_settings__a_bump_nodes_refuse__is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="10 at least"):
        TxSettings(fee_bump_pct=5)

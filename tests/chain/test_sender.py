"""The one transaction sender (`neurotoken.chain.sender`) and its fee rule
(`neurotoken.chain.fees`), against a scripted node: the fee rule (10% floor, twice the base
fee, the cap and no room under it, legacy gas prices), the journal written before every
broadcast, each answer of the node, following (receipts of any attempt, a nonce used by
something else, rebroadcasts) and replacement of stuck transactions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3

from neurotoken.chain.answers import SendResult
from neurotoken.chain.fees import GWEI, MIN_BUMP_PCT, FeePolicy, Fees, raised
from neurotoken.chain.sender import (
    DROPPED,
    MINED,
    NONCE_USED_POLLS,
    QUICK_BUMPS,
    REVERTED,
    Attempt,
    Call,
    MemoryJournal,
    Outcome,
    PendingTx,
    Sender,
)
from neurotoken.errors import ConfigError
from tests.chain.fakenode import FakeEth, rpc_error

ACCOUNT: LocalAccount = Account.from_key("0x" + "42" * 32)
MARKET = "0x" + "ab" * 20
CALL = Call(Web3.to_checksum_address(MARKET), b"\x12\x34", 100_000)
CHAIN_ID = 31337


# ---------------------------------------------------------------------- the fee rule


def test_raised__rounds_up_in_integers() -> None:
    assert raised(100, 25) == 125
    assert raised(7, 25) == 9 and raised(3, 25) == 4
    assert raised(10**30 + 1, 10) == 11 * 10**29 + 2  # exact where a float is not


def test_initial__twice_the_base_fee_plus_the_tip__the_policys_or_the_nodes() -> None:
    assert FeePolicy(tip=GWEI).initial(10 * GWEI, suggested=7) == Fees(21 * GWEI, GWEI)
    assert FeePolicy(tip=None).initial(10 * GWEI, suggested=2 * GWEI) == Fees(22 * GWEI, 2 * GWEI)


def test_initial__capped__and_the_tip_never_above_the_max_fee() -> None:
    policy = FeePolicy(tip=5 * GWEI, max_fee=3 * GWEI)
    assert policy.initial(10 * GWEI, 0) == Fees(3 * GWEI, 3 * GWEI)


def test_initial__no_base_fee__a_legacy_gas_price__capped() -> None:
    assert FeePolicy().initial(None, suggested=8 * GWEI) == Fees(8 * GWEI, None)
    assert FeePolicy(max_fee=5 * GWEI).initial(None, 8 * GWEI) == Fees(5 * GWEI, None)


def test_bump__raises_tip_and_max_fee__max_fee_covers_twice_the_base_fee() -> None:
    policy = FeePolicy(bump_pct=25, max_fee=None)
    old = Fees(max_fee=100 * GWEI, priority_fee=2 * GWEI)
    assert policy.bump(old, base_fee=10 * GWEI) == Fees(125 * GWEI, 2_500_000_000)
    # The base fee rose past the old max fee: twice it plus the new tip.
    assert policy.bump(old, base_fee=300 * GWEI) == Fees(602_500_000_000, 2_500_000_000)
    assert policy.bump(Fees(7, 3), 0) == Fees(9, 4)  # rounded up, never down


def test_bump__the_tip_never_below_the_policys_tip() -> None:
    policy = FeePolicy(bump_pct=25, max_fee=None, tip=GWEI)
    assert policy.bump(Fees(100, 10), base_fee=0) == Fees(GWEI, GWEI)


def test_bump__at_least_ten_percent_on_both_fees__else_none() -> None:
    policy = FeePolicy(bump_pct=MIN_BUMP_PCT, max_fee=None)
    assert policy.bump(Fees(100, 10), 0) == Fees(110, 11)
    assert policy.bump(Fees(101, 11), 0) == Fees(112, 13)  # 111.1 and 12.1, rounded up


def test_bump__capped__or_none_when_the_cap_leaves_less_than_ten_percent() -> None:
    old = Fees(max_fee=100 * GWEI, priority_fee=2 * GWEI)

    def policy(cap: int) -> FeePolicy:
        return FeePolicy(bump_pct=25, max_fee=cap)

    assert policy(150 * GWEI).bump(old, 300 * GWEI) == Fees(150 * GWEI, 2_500_000_000)
    assert policy(110 * GWEI).bump(old, 300 * GWEI) == Fees(110 * GWEI, 2_500_000_000)
    assert policy(109 * GWEI).bump(old, 300 * GWEI) is None
    assert policy(150 * GWEI).bump(Fees(150 * GWEI, 2_500_000_000), 0) is None
    assert policy(GWEI * 105 // 100).bump(Fees(GWEI, GWEI), 0) is None  # the tip too
    assert "no room for a 10% bump" in policy(GWEI).no_room(old)


def test_bump__legacy_gas_price() -> None:
    assert FeePolicy(max_fee=None).bump(Fees(10 * GWEI, None), 50 * GWEI) == Fees(
        12_500_000_000, None
    )
    assert FeePolicy(max_fee=11 * GWEI).bump(Fees(10 * GWEI, None), 0) == Fees(11 * GWEI, None)
    assert FeePolicy(max_fee=10 * GWEI).bump(Fees(10 * GWEI, None), 0) is None


def test_policy__a_bump_nodes_refuse_or_a_cap_of_nothing__is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="10 at least"):
        FeePolicy(bump_pct=5)
    with pytest.raises(ConfigError, match="positive"):
        FeePolicy(max_fee=0)


def test_fees__fields_and_back() -> None:
    dynamic = Fees(30, 2)
    assert dynamic.fields() == {"type": 2, "maxFeePerGas": 30, "maxPriorityFeePerGas": 2}
    assert Fees.of(dynamic.fields()) == dynamic
    assert Fees.of(Fees(30, None).fields()) == Fees(30, None)


# ---------------------------------------------------------------------- a scripted node


class LoggingJournal(MemoryJournal):
    def __init__(self, log: list[str], eth: FakeEth) -> None:
        super().__init__()
        self.log = log
        self.eth = eth
        self.refusals = 0
        self.finished: list[Outcome] = []

    def record(self, tx: PendingTx, attempt: Attempt) -> None:
        assert attempt.hash not in self.eth.pool  # nothing is broadcast before it is recorded
        super().record(tx, attempt)
        self.log.append(f"record {attempt.hash}")

    def refused(self, tx: PendingTx) -> None:
        self.refusals += 1

    def finish(self, outcome: Outcome) -> None:
        super().finish(outcome)
        self.finished.append(outcome)


class Node:
    def __init__(self, policy: FeePolicy | None = None, stuck_after_blocks: int = 3) -> None:
        self.log: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.eth = FakeEth(self.log)
        self.journal = LoggingJournal(self.log, self.eth)
        self.sender = Sender(
            self.eth.web3(),
            ACCOUNT,
            self.journal,
            policy or FeePolicy(bump_pct=25, max_fee=500 * GWEI, tip=GWEI),
            chain_id=CHAIN_ID,
            stuck_after_blocks=stuck_after_blocks,
            events=self.tell,
        )
        self.sender.sync()

    def tell(self, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
        self.events.append((name, fields))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for n, fields in self.events if n == name]

    def send(self) -> PendingTx:
        return self.sender.send(CALL, "settle", [7]).tx

    def look(self, tx: PendingTx) -> Outcome | None:
        return self.sender.follow(tx, self.eth.block_number, self.eth.latest_nonce)


@pytest.fixture
def node() -> Iterator[Node]:
    yield Node()


def decoded(raw: bytes) -> dict[str, Any]:
    return dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())


# ---------------------------------------------------------------------- sending


def test_send__recorded_before_broadcast__signed_at_the_synced_nonce(node: Node) -> None:
    tx = node.send()
    (attempt,) = tx.attempts
    assert node.log == [f"record {attempt.hash}", f"broadcast {attempt.hash}"]
    assert tx.nonce == 5 and node.sender.nonce == 6
    signed = decoded(node.eth.sent[0])
    assert signed["nonce"] == 5 and signed["chainId"] == CHAIN_ID and signed["gas"] == 100_000
    assert (signed["maxFeePerGas"], signed["maxPriorityFeePerGas"]) == (21 * GWEI, GWEI)
    assert attempt.fees == Fees(21 * GWEI, GWEI) and attempt.sent_block == 100
    assert node.named("tx_recorded")[0]["hash"] == attempt.hash
    assert node.named("tx_broadcast") == [{"hash": attempt.hash}]


def test_send__a_journal_that_fails__nothing_broadcast_and_the_nonce_kept(node: Node) -> None:
    def broken(tx: PendingTx, attempt: Attempt) -> None:
        raise OSError("disk full")

    node.journal.record = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        node.send()
    assert node.eth.sent == [] and node.sender.nonce == 5


def test_send__no_base_fee__a_legacy_transaction_at_the_nodes_gas_price(node: Node) -> None:
    node.eth.base_fee = None
    tx = node.send()
    raw = node.eth.sent[0]
    assert raw[0] >= 0xC0  # an RLP list: no type byte
    assert tx.attempts[0].fees == Fees(7 * GWEI, None)


@pytest.mark.parametrize(
    ("answer", "live"),
    [
        (rpc_error("already known"), True),
        (requests.ConnectionError("reset"), True),  # may have arrived
        (rpc_error("insufficient funds for gas * price + value"), False),
    ],
)
def test_send__node_answers__known_lost_refused(node: Node, answer: Exception, live: bool) -> None:
    node.eth.answers = [answer]
    tx = node.send()
    assert bool(tx.live) is live
    assert node.journal.refusals == (0 if live else 1)
    assert node.sender.replacements == 0


def test_send__nonce_too_low__refused_and_the_nonce_resynchronised(node: Node) -> None:
    node.eth.answers = [rpc_error("nonce too low")]
    node.eth.pending_nonce = 9
    sent = node.sender.send(CALL, "settle", [7])
    assert sent.answer.result is SendResult.NONCE_TOO_LOW and not sent.tx.live
    assert node.sender.nonce == 9
    assert node.journal.refusals == 1


def test_send__underpriced__replaced_at_once_with_bumped_fees(node: Node) -> None:
    node.eth.answers = [rpc_error("replacement transaction underpriced")]
    tx = node.send()
    first, second = tx.attempts
    assert tx.live == [second] and second.fees == Fees(raised(21 * GWEI, 25), raised(GWEI, 25))
    assert node.log == [
        f"record {first.hash}",
        f"broadcast {first.hash}",
        f"record {second.hash}",
        f"broadcast {second.hash}",
    ]
    (replaced,) = node.named("tx_replaced")
    assert replaced["reason"] == "underpriced" and replaced["old"] == first.hash
    assert decoded(node.eth.sent[1])["nonce"] == decoded(node.eth.sent[0])["nonce"]


def test_replace__underpriced_again_and_again__stops_after_quick_bumps(node: Node) -> None:
    node.eth.answers = [rpc_error("transaction underpriced")] * (QUICK_BUMPS + 1)
    tx = node.send()
    assert len(tx.attempts) == 1 + QUICK_BUMPS and tx.live == []
    fees = [a.fees.max_fee for a in tx.attempts]
    assert fees == sorted(fees) and len(set(fees)) == len(fees)
    assert node.sender.held(tx) == f"the node refused {QUICK_BUMPS} bumps in a row as underpriced"
    assert len(node.named("tx_not_replaced")) == 1


# ---------------------------------------------------------------------- following


def test_follow__receipt_of_an_earlier_attempt__mined__journal_finished(node: Node) -> None:
    tx = node.send()
    node.eth.block_number += 3
    assert node.look(tx) is None  # stuck: replaced
    first, _replacement = tx.attempts
    node.eth.mine(first.hash)
    outcome = node.look(tx)
    assert outcome is not None and outcome.status == MINED and outcome.tx_hash == first.hash
    assert outcome.block_number == node.eth.block_number
    assert node.journal.pending() == [] and node.journal.finished == [outcome]
    assert node.named("tx_mined")[0]["hash"] == first.hash


def test_follow__status_zero__reverted(node: Node) -> None:
    tx = node.send()
    node.eth.mine(tx.attempts[0].hash, status=0)
    outcome = node.look(tx)
    assert outcome is not None and outcome.status == REVERTED


def test_follow__nonce_used_by_something_else__dropped_after_three_looks(node: Node) -> None:
    tx = node.send()
    node.eth.latest_nonce = 6  # the nonce went to a transaction that is not ours
    for _ in range(NONCE_USED_POLLS - 1):
        assert node.look(tx) is None
    outcome = node.look(tx)
    assert outcome is not None and outcome.status == DROPPED and outcome.tx_hash is None
    assert node.named("tx_dropped") == [{"tx_id": None, "nonce": 5, "jobs": [7]}]


def test_follow__stuck_for_n_blocks__replaced_at_its_nonce_recorded_first(node: Node) -> None:
    tx = node.send()
    node.eth.block_number += 2
    assert node.look(tx) is None and len(tx.attempts) == 1  # not yet stuck
    node.eth.block_number += 1
    node.eth.base_fee = 100 * GWEI
    assert node.look(tx) is None
    first, second = tx.attempts
    assert second.fees == Fees(2 * 100 * GWEI + raised(GWEI, 25), raised(GWEI, 25))
    assert node.log[-2:] == [f"record {second.hash}", f"broadcast {second.hash}"]
    assert decoded(node.eth.sent[-1])["nonce"] == tx.nonce
    (replaced,) = node.named("tx_replaced")
    assert replaced == {
        "tx_id": None,
        "nonce": 5,
        "reason": "stuck",
        "old": first.hash,
        "new": second.hash,
        "max_fee": second.fees.max_fee,
        "priority_fee": second.fees.priority_fee,
    }
    assert node.sender.replacements == 1


def test_follow__the_cap_leaves_no_room__kept_waiting__said_once() -> None:
    node = Node(FeePolicy(bump_pct=25, max_fee=22 * GWEI, tip=GWEI))
    tx = node.send()
    assert tx.attempts[0].fees == Fees(21 * GWEI, GWEI)
    for _ in range(3):
        node.eth.block_number += 3
        assert node.look(tx) is None
    assert len(tx.attempts) == 1 and node.sender.replacements == 0
    (held,) = node.named("tx_fee_cap_reached")
    assert held["why"] == node.sender.held(tx) and "no room for a 10% bump" in held["why"]
    node.eth.mine(tx.attempts[0].hash)
    assert node.look(tx) is not None and node.sender.held(tx) is None


def test_follow__the_node_lost_it__broadcast_again__or_replaced_if_underpriced(
    node: Node,
) -> None:
    tx = node.send()
    node.eth.pool.clear()  # evicted
    assert node.look(tx) is None
    assert node.log[-1] == f"broadcast {tx.attempts[0].hash}" and len(tx.attempts) == 1
    node.eth.pool.clear()
    node.eth.answers = [rpc_error("max fee per gas less than block base fee")]
    assert node.look(tx) is None
    assert len(tx.attempts) == 2 and node.named("tx_replaced")[0]["reason"] == "underpriced"


def test_poll__follows_the_journals_pending__and_the_nonce_follows_the_chain(node: Node) -> None:
    a, b = node.send(), node.send()
    assert (a.nonce, b.nonce) == (5, 6)
    node.eth.mine(a.attempts[0].hash)
    outcomes = node.sender.poll(node.eth.block_number)
    assert [o.tx for o in outcomes] == [a] and node.sender.pending() == [b]
    node.eth.latest_nonce = 12
    node.sender.poll(node.eth.block_number)
    assert node.sender.nonce == 12


def test_wait__gives_none_after_the_timeout(node: Node) -> None:
    tx = node.send()
    assert node.sender.wait(tx, timeout_s=0, poll_s=0) is None


def test_abandon__a_refused_transaction_frees_its_nonce(node: Node) -> None:
    node.eth.answers = [rpc_error("insufficient funds")]
    tx = node.send()
    node.sender.abandon(tx)
    assert node.sender.pending() == [] and node.sender.nonce == 5


def test_adopt__a_transaction_the_node_holds__re_signed_to_the_same_bytes(node: Node) -> None:
    tx = node.send()
    raw = node.eth.sent[0]
    fields = decoded(raw)
    node_tx = {
        "hash": tx.attempts[0].hash,
        "type": 2,
        "nonce": fields["nonce"],
        "to": CALL.to,
        "input": HexBytes(CALL.data),
        "gas": CALL.gas,
        "value": 0,
        "maxFeePerGas": fields["maxFeePerGas"],
        "maxPriorityFeePerGas": fields["maxPriorityFeePerGas"],
    }
    adopted = node.sender.adopt(node_tx, "acceptJob(7)")
    assert adopted.call == CALL and adopted.nonce == tx.nonce
    assert adopted.attempts[0].raw == raw and adopted.attempts[0].hash == tx.attempts[0].hash
    with pytest.raises(ConfigError, match="type 1"):
        node.sender.adopt({**node_tx, "type": 1}, "acceptJob(7)")

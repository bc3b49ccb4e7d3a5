"""`oracle settle` sends through the shared sender (`neurotoken.chain.sender`) as the oracle
does, with its transactions in memory: it waits for the receipt of any attempt, replaces a
stuck settlement, and says so when the node refuses it or no receipt comes. Against a
scripted node; the command end to end is in test_e2e.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3

from neurotoken.chain.fees import GWEI
from neurotoken.chain.sender import MemoryJournal, Sender
from neurotoken.market.states import JobState
from oracle.chain import MarketChain
from oracle.cli import _send_settlement
from oracle.keys import OracleKey
from oracle.sending import oracle_sender
from oracle.settings import OracleSettings
from tests.chain.fakenode import FakeEth, rpc_error

MARKET = Web3.to_checksum_address("0x" + "ab" * 20)
KEY = OracleKey(Account.from_key("0x" + "43" * 32))


def decoded(raw: bytes) -> dict[str, Any]:
    return dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())


class BusyNode(FakeEth):
    """A block passes at every receipt query, and the second attempt the node takes is mined
    at the next one."""

    def get_transaction_receipt(self, tx_hash: HexBytes) -> dict[str, int]:
        self.block_number += 1
        if len(self.pool) >= 2 and not self.receipts:
            self.mine(Web3.keccak(self.sent[-1]).to_0x_hex())
        return super().get_transaction_receipt(tx_hash)


def settle_with(node: FakeEth) -> tuple[MarketChain, Sender]:
    chain = cast(
        MarketChain,
        SimpleNamespace(
            w3=node.web3(),
            chain_id=31337,
            address=MARKET,
            get_job=lambda _job: SimpleNamespace(state=JobState.SUBMITTED),
        ),
    )
    sender = oracle_sender(chain, KEY, MemoryJournal(), OracleSettings(market=MARKET))
    sender.sync()
    return chain, sender


def test_settle__stuck__replaced_with_higher_fees__its_receipt_awaited() -> None:
    node = BusyNode()
    chain, sender = settle_with(node)
    entry = _send_settlement(chain, sender, 7, b"\x01", 80_000, 60)
    first, second = (decoded(raw) for raw in node.sent)
    assert entry["result"] == "settled" and entry["tx"] == Web3.keccak(node.sent[1]).to_0x_hex()
    assert entry["block"] == node.block_number
    assert first["nonce"] == second["nonce"] and sender.replacements == 1
    assert second["maxFeePerGas"] >= first["maxFeePerGas"] * 125 // 100
    assert sender.pending() == []


def test_settle__refused_outright__said__and_its_nonce_freed() -> None:
    node = FakeEth()
    node.answers = [rpc_error("insufficient funds for gas * price + value")]
    chain, sender = settle_with(node)
    entry = _send_settlement(chain, sender, 7, b"\x01", 80_000, 60)
    assert entry["result"] == "refused" and "insufficient funds" in entry["error"]
    assert sender.pending() == [] and sender.nonce == node.pending_nonce


def test_settle__no_receipt_in_time__said_with_the_hash_to_follow() -> None:
    node = FakeEth()
    chain, sender = settle_with(node)
    entry = _send_settlement(chain, sender, 7, b"\x01", 80_000, 0)
    assert entry["result"] == "no_receipt" and entry["tx"] == Web3.keccak(node.sent[0]).to_0x_hex()
    (tx,) = sender.pending()
    assert tx.attempts[0].fees.priority_fee == GWEI  # ORACLE_PRIORITY_FEE_GWEI's default

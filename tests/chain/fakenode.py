"""A scripted node for the sender's tests: just the `eth` calls `neurotoken.chain.sender`
makes, with answers to broadcasts set by the test."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from neurotoken.chain.fees import GWEI


def rpc_error(message: str) -> Web3RPCError:
    return Web3RPCError(str({"code": -32003, "message": message}))


class FakeEth:
    """Just what the sender asks of a node. `answers` scripts the next broadcasts (an
    exception to raise, or None to take it); `log` is every broadcast (and whatever else the
    test writes there, the journal's records)."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log: list[str] = [] if log is None else log
        self.block_number = 100
        self.base_fee: int | None = 10 * GWEI
        self.max_priority_fee = 2 * GWEI
        self.gas_price = 7 * GWEI
        self.latest_nonce = 5
        self.pending_nonce = 5
        self.answers: list[Exception | None] = []
        self.pool: dict[str, bytes] = {}
        self.receipts: dict[str, dict[str, int]] = {}
        self.sent: list[bytes] = []

    def get_block(self, _which: str) -> dict[str, Any]:
        return {} if self.base_fee is None else {"baseFeePerGas": self.base_fee}

    def get_transaction_count(self, _address: str, block: str) -> int:
        return self.pending_nonce if block == "pending" else self.latest_nonce

    def send_raw_transaction(self, raw: bytes) -> HexBytes:
        tx_hash = Web3.keccak(raw)
        self.log.append(f"broadcast {tx_hash.to_0x_hex()}")
        self.sent.append(bytes(raw))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        self.pool[tx_hash.to_0x_hex()] = bytes(raw)
        return tx_hash

    def get_transaction_receipt(self, tx_hash: HexBytes) -> dict[str, int]:
        receipt = self.receipts.get(HexBytes(tx_hash).to_0x_hex())
        if receipt is None:
            raise TransactionNotFound("no receipt")
        return receipt

    def get_transaction(self, tx_hash: HexBytes) -> dict[str, Any]:
        key = HexBytes(tx_hash).to_0x_hex()
        if key not in self.pool and key not in self.receipts:
            raise TransactionNotFound("unknown")
        return {"hash": key}

    def mine(self, tx_hash: str, status: int = 1) -> None:
        self.block_number += 1
        self.receipts[tx_hash] = {"status": status, "blockNumber": self.block_number}
        self.latest_nonce += 1

    def web3(self) -> Web3:
        """A stand-in Web3 whose `eth` is this node."""
        return cast(Web3, SimpleNamespace(eth=self))

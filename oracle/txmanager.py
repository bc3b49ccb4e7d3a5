"""Transactions: a local nonce, EIP-1559 fees, write-ahead records, replacement of stuck
transactions, and the node's answers read for what they mean.

The rule that makes crashes harmless: a transaction is signed and *recorded* (nonce, raw
bytes, hash) before it is broadcast, and so is every fee replacement. After a restart the
oracle therefore knows every hash it may have sent; `poll` finds the receipt of whichever
landed, or rebroadcasts.

Node answers (read by `neurotoken.chain.answers.classify`, shared with the provider agent):

* "already known" / "already imported": the node has it; nothing to do.
* "nonce too low": that nonce is used. If one of our attempts holds it, its receipt will
  show; if not, something else used it, the transaction is recorded as dropped and its jobs
  are planned again. The local nonce is resynchronised from the chain.
* "replacement transaction underpriced", or a max fee below the base fee: replace now with
  fees bumped from the current base fee.
* a connection error: unknown whether it arrived; the next poll rebroadcasts.

A transaction without a receipt `stuck_after_blocks` blocks after its latest attempt was
sent is replaced with fees raised by `fee_bump_pct` (nodes require at least 10%).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import requests
from web3.exceptions import TransactionNotFound, Web3RPCError

from neurotoken.chain.answers import SendResult, classify
from oracle.chain import MarketChain
from oracle.keys import OracleKey
from oracle.logs import event, get_logger
from oracle.store import TX_DROPPED, TX_MINED, TX_PENDING, TX_REVERTED, Attempt, Store, TxRow

log = get_logger("tx")
GWEI = 10**9


@dataclass(frozen=True)
class TxOutcome:
    """A transaction that reached an end: mined (status 1), reverted (status 0) or dropped."""

    tx: TxRow
    status: str
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True)
class Fees:
    max_fee: int
    priority_fee: int


class TxManager:
    """Sends and follows the oracle's transactions; one instance per key."""

    def __init__(
        self,
        chain: MarketChain,
        store: Store,
        key: OracleKey,
        *,
        stuck_after_blocks: int = 3,
        fee_bump_pct: int = 25,
        priority_fee_gwei: float = 1.0,
        max_fee_gwei: float = 500.0,
        on_broadcast: Callable[[], None] | None = None,
    ) -> None:
        self.chain = chain
        self.store = store
        self.key = key
        self.stuck_after_blocks = stuck_after_blocks
        self.bump = fee_bump_pct
        self.priority_fee = int(priority_fee_gwei * GWEI)
        self.max_fee_cap = int(max_fee_gwei * GWEI)
        self.on_broadcast = on_broadcast
        self.nonce = 0
        self._nonce_used_polls: dict[int, int] = {}
        self.replacements = 0
        self.rebroadcasts = 0

    @property
    def address(self) -> str:
        return self.key.address

    # ------------------------------------------------------------------ nonce and fees

    def sync(self) -> int:
        """Sets the local nonce from the chain and the pending transactions on record."""
        w3 = self.chain.w3
        chain_nonce = int(w3.eth.get_transaction_count(self.address, "pending"))  # type: ignore[arg-type]
        pending = self.store.txs([TX_PENDING], sender=self.address)
        self.nonce = max([chain_nonce] + [tx.nonce + 1 for tx in pending])
        event(log, "nonce_synced", nonce=self.nonce, chain_nonce=chain_nonce, pending=len(pending))
        return self.nonce

    def pending(self) -> list[TxRow]:
        return self.store.txs([TX_PENDING], sender=self.address)

    def fees(self, previous: Attempt | None = None) -> Fees:
        block = self.chain.block("latest")
        base = block.base_fee if block is not None else GWEI
        tip = self.priority_fee
        max_fee = 2 * base + tip
        if previous is not None:
            factor = 1 + self.bump / 100
            tip = max(tip, math.ceil(previous.priority_fee * factor))
            max_fee = max(max_fee, math.ceil(previous.max_fee * factor), 2 * base + tip)
        max_fee = min(max_fee, self.max_fee_cap)
        return Fees(max_fee=max_fee, priority_fee=min(tip, max_fee))

    def _sign(self, to: str, data: bytes, gas: int, nonce: int, fees: Fees, head: int) -> Attempt:
        signed = self.key.sign_transaction(
            {
                "type": 2,
                "chainId": self.chain.chain_id,
                "nonce": nonce,
                "to": to,
                "value": 0,
                "data": data,
                "gas": gas,
                "maxFeePerGas": fees.max_fee,
                "maxPriorityFeePerGas": fees.priority_fee,
            }
        )
        return Attempt(
            hash="0x" + bytes(signed.hash).hex(),
            raw=bytes(signed.raw_transaction),
            max_fee=fees.max_fee,
            priority_fee=fees.priority_fee,
            sent_block=head,
        )

    # ------------------------------------------------------------------ sending

    def send(self, kind: str, job_ids: list[int], data: bytes, gas: int, head: int) -> int:
        """Signs, records, then broadcasts a call to the market; returns the tx id."""
        nonce = self.nonce
        attempt = self._sign(self.chain.address, data, gas, nonce, self.fees(), head)
        tx_id = self.store.create_tx(
            self.address, nonce, kind, job_ids, self.chain.address, data, gas, attempt
        )
        self.nonce += 1
        event(
            log,
            "tx_recorded",
            tx_id=tx_id,
            nonce=nonce,
            kind=kind,
            jobs=job_ids,
            hash=attempt.hash,
            max_fee=attempt.max_fee,
        )
        result = self.broadcast(attempt)
        if self.on_broadcast is not None:
            self.on_broadcast()
        if result == SendResult.NONCE_TOO_LOW:
            self.sync()
        elif result == SendResult.UNDERPRICED:
            tx = next((t for t in self.pending() if t.id == tx_id), None)
            if tx is not None:
                self.replace(tx, head, "underpriced")
        return tx_id

    def broadcast(self, attempt: Attempt) -> SendResult:
        try:
            self.chain.w3.eth.send_raw_transaction(attempt.raw)
        except (Web3RPCError, ValueError, requests.RequestException, OSError) as exc:
            result = classify(exc)
            level = 20 if result in (SendResult.KNOWN,) else 30
            event(
                log,
                "tx_broadcast_refused",
                level=level,
                hash=attempt.hash,
                result=result.value,
                error=str(exc)[:200],
            )
            return result
        event(log, "tx_broadcast", hash=attempt.hash)
        return SendResult.SENT

    def replace(self, tx: TxRow, head: int, reason: str) -> Attempt | None:
        """Re-signs `tx` at its nonce with bumped fees, records it, broadcasts it."""
        last = max(tx.attempts, key=lambda a: a.max_fee)
        fees = self.fees(last)
        if fees.max_fee <= last.max_fee:
            event(log, "tx_fee_cap_reached", level=30, tx_id=tx.id, max_fee=last.max_fee)
            return None
        attempt = self._sign(tx.to_address, tx.data, tx.gas, tx.nonce, fees, head)
        self.store.add_attempt(tx.id, attempt)
        self.replacements += 1
        event(
            log,
            "tx_replaced",
            tx_id=tx.id,
            nonce=tx.nonce,
            reason=reason,
            old=last.hash,
            new=attempt.hash,
            max_fee=fees.max_fee,
            priority_fee=fees.priority_fee,
        )
        result = self.broadcast(attempt)
        if self.on_broadcast is not None:
            self.on_broadcast()
        if result == SendResult.NONCE_TOO_LOW:
            self.sync()
        return attempt

    # ------------------------------------------------------------------ following

    def _receipt(self, tx_hash: str) -> dict[str, int] | None:
        try:
            receipt = self.chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        if receipt is None or receipt.get("blockNumber") is None:
            return None
        return {"status": int(receipt["status"]), "block": int(receipt["blockNumber"])}

    def _known(self, tx_hash: str) -> bool:
        try:
            self.chain.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def poll(self, head: int) -> list[TxOutcome]:
        """Receipts of pending transactions; rebroadcasts lost ones and replaces stuck ones."""
        outcomes: list[TxOutcome] = []
        pending = self.pending()
        if not pending:
            return outcomes
        latest_nonce = int(
            self.chain.w3.eth.get_transaction_count(self.address, "latest")  # type: ignore[arg-type]
        )
        for tx in pending:
            found = None
            for attempt in tx.attempts:
                receipt = self._receipt(attempt.hash)
                if receipt is not None:
                    found = (attempt.hash, receipt)
                    break
            if found is not None:
                tx_hash, receipt = found
                status = TX_MINED if receipt["status"] == 1 else TX_REVERTED
                self.store.finish_tx(tx.id, status, tx_hash, receipt["block"])
                self._nonce_used_polls.pop(tx.id, None)
                event(
                    log,
                    "tx_" + status,
                    tx_id=tx.id,
                    hash=tx_hash,
                    block=receipt["block"],
                    nonce=tx.nonce,
                    jobs=tx.job_ids,
                )
                outcomes.append(TxOutcome(tx, status, tx_hash, receipt["block"]))
                continue
            if latest_nonce > tx.nonce:
                # The nonce is used but none of our attempts has a receipt: look again next
                # poll (a node may answer the nonce before the receipt), then give it up.
                seen = self._nonce_used_polls.get(tx.id, 0) + 1
                self._nonce_used_polls[tx.id] = seen
                if seen >= 3:
                    self.store.finish_tx(tx.id, TX_DROPPED, None, None)
                    self._nonce_used_polls.pop(tx.id, None)
                    event(log, "tx_dropped", level=30, tx_id=tx.id, nonce=tx.nonce, jobs=tx.job_ids)
                    outcomes.append(TxOutcome(tx, TX_DROPPED, None, None))
                continue
            last = max(tx.attempts, key=lambda a: a.max_fee)
            if head - last.sent_block >= self.stuck_after_blocks:
                self.replace(tx, head, "stuck")
                continue
            if not self._known(last.hash):
                self.rebroadcasts += 1
                result = self.broadcast(last)
                if result == SendResult.UNDERPRICED:
                    self.replace(tx, head, "underpriced")
                elif result == SendResult.NONCE_TOO_LOW:
                    self.sync()
        if self.nonce < latest_nonce:
            self.nonce = latest_nonce
        return outcomes

"""One transaction of the provider agent from broadcast to receipt, replaced when it is stuck.

A `PendingTx` holds one nonce of the agent's account and every attempt signed at it (same to,
data, gas and value; only the fees differ). It waits for the receipt of *any* attempt. When
none lands within `stuck_after_blocks` blocks of the last broadcast (blocks counted with
`eth_blockNumber`), the transaction is re-signed with fees raised by `fee_bump_pct`:

    maxPriorityFeePerGas = ceil(old tip x (1 + bump))
    maxFeePerGas         = max(ceil(old max fee x (1 + bump)), 2 x current base fee + new tip)
    gasPrice (legacy)    = ceil(old gas price x (1 + bump))

never above `max_fee_gwei`. Nodes refuse a replacement whose fees are not at least 10% higher;
when the cap leaves no room for that, the agent keeps waiting on what it sent and says so if
the receipt timeout passes. `on_sent(hash)` runs before each attempt is broadcast (so a restart
finds the latest hash), and again with the latest attempt the node took when it refused a
newer one, so the recorded hash is always one the node may mine.

The node's answers (`neurotoken.chain.answers.classify`, shared with the oracle):
"already known" is fine; "underpriced" or a max fee below the base fee bumps again at once;
"nonce too low" means an attempt was mined (its receipt shows) or something else used the
nonce (`NonceUsedError`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from neurotoken.chain.answers import SendResult, classify
from neurotoken.errors import ConfigError
from neurotoken.provider.errors import (
    NonceUsedError,
    TxRefusedError,
    TxTimeoutError,
)

GWEI = 10**9
MIN_BUMP_PCT = 10
"""Nodes (geth's default price bump) refuse a replacement with fees less than 10% higher."""
POLL_S = 0.25
NONCE_USED_POLLS = 3
"""Polls that see the nonce used without a receipt of ours before the nonce is given up."""
QUICK_BUMPS = 5
"""Replacements refused as underpriced in a row before waiting for blocks again."""

_log = logging.getLogger("neurotoken.provider.sending")


@dataclass(frozen=True)
class TxSettings:
    """How the agent's transactions are followed and replaced."""

    receipt_timeout_s: float = 180.0
    """The longest wait for a receipt of any attempt (one call of transact or resume)."""
    stuck_after_blocks: int = 3
    """Blocks without a receipt after the last broadcast before the fees are bumped."""
    fee_bump_pct: int = 25
    """How much each replacement raises the fees (nodes require at least 10)."""
    max_fee_gwei: float | None = 500.0
    """No attempt pays more per gas than this (None: no cap)."""

    def __post_init__(self) -> None:
        if self.receipt_timeout_s <= 0:
            raise ConfigError(f"the receipt timeout must be positive: {self.receipt_timeout_s}")
        if self.stuck_after_blocks < 1:
            raise ConfigError(f"stuck_after_blocks must be at least 1: {self.stuck_after_blocks}")
        if self.fee_bump_pct < MIN_BUMP_PCT:
            raise ConfigError(
                f"a fee bump of {self.fee_bump_pct}% is refused by nodes: {MIN_BUMP_PCT} at least"
            )
        if self.max_fee_gwei is not None and self.max_fee_gwei <= 0:
            raise ConfigError(f"the fee cap must be positive: {self.max_fee_gwei} gwei")

    @property
    def max_fee_wei(self) -> int | None:
        return None if self.max_fee_gwei is None else int(self.max_fee_gwei * GWEI)


@dataclass(frozen=True)
class Fees:
    """An attempt's fees: EIP-1559 (`priority_fee` set) or legacy (`max_fee` is the gasPrice)."""

    max_fee: int
    priority_fee: int | None

    @classmethod
    def of(cls, tx: Mapping[str, Any]) -> Fees:
        if tx.get("maxFeePerGas") is not None:
            return cls(int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"]))
        return cls(int(tx["gasPrice"]), None)

    def apply(self, tx: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `tx` with these fees."""
        out = dict(tx)
        if self.priority_fee is None:
            out["gasPrice"] = self.max_fee
        else:
            out["maxFeePerGas"] = self.max_fee
            out["maxPriorityFeePerGas"] = self.priority_fee
        return out

    def __str__(self) -> str:
        if self.priority_fee is None:
            return f"gas price {self.max_fee / GWEI:.9g} gwei"
        return f"max fee {self.max_fee / GWEI:.9g} gwei, tip {self.priority_fee / GWEI:.9g} gwei"


def raised(value: int, pct: int) -> int:
    """ceil(value x (1 + pct/100)), in integers."""
    return -(-value * (100 + pct) // 100)


def bump_fees(old: Fees, pct: int, base_fee: int, cap_wei: int | None) -> Fees | None:
    """The fees of a replacement for an attempt signed with `old` (see the module docstring),
    or None when the cap leaves no room for one that nodes accept (every fee 10% up)."""
    if old.priority_fee is None:
        price = raised(old.max_fee, pct)
        if cap_wei is not None:
            price = min(price, cap_wei)
        return Fees(price, None) if price >= raised(old.max_fee, MIN_BUMP_PCT) else None
    tip = raised(old.priority_fee, pct)
    max_fee = max(raised(old.max_fee, pct), 2 * base_fee + tip)
    if cap_wei is not None:
        max_fee = min(max_fee, cap_wei)
    tip = min(tip, max_fee)
    if max_fee < raised(old.max_fee, MIN_BUMP_PCT) or tip < raised(old.priority_fee, MIN_BUMP_PCT):
        return None
    return Fees(max_fee, tip)


@dataclass(frozen=True)
class Attempt:
    tx_hash: str
    raw: bytes
    fees: Fees


def unsigned(tx: Mapping[str, Any], chain_id: int) -> dict[str, Any]:
    """The fields to re-sign a transaction fetched from the node (type 0 or 2) with."""
    kind = int(tx.get("type", 0))
    if kind not in (0, 2) or tx.get("accessList"):
        shown = HexBytes(tx["hash"]).to_0x_hex()
        raise ConfigError(
            f"transaction {shown} (type {kind}, with an access list?) is not one the agent "
            "builds: it re-signs only type 0 and 2 transactions without access lists"
        )
    out: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": int(tx["nonce"]),
        "to": tx["to"],
        "value": int(tx["value"]),
        "data": bytes(tx["input"]),
        "gas": int(tx["gas"]),
    }
    if kind == 2:
        out["type"] = 2
        out["maxFeePerGas"] = int(tx["maxFeePerGas"])
        out["maxPriorityFeePerGas"] = int(tx["maxPriorityFeePerGas"])
    else:
        out["gasPrice"] = int(tx["gasPrice"])
    return out


def _maybe_sent(exc: BaseException | None) -> bool:
    """A connection failure: the node may have taken the transaction or not."""
    return isinstance(exc, requests.RequestException | OSError)


class PendingTx:
    """One nonce of `account` and the attempts signed at it (see the module docstring)."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        tx: Mapping[str, Any],
        settings: TxSettings,
        action: str,
        on_sent: Callable[[str], None] | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.tx = dict(tx)
        self.settings = settings
        self.action = action
        self.on_sent = on_sent or (lambda _hash: None)
        self.nonce = int(tx["nonce"])
        self.fees = Fees.of(tx)
        """The highest fees signed so far: what the next bump raises."""
        self.live: list[str] = []
        """Hashes of the attempts the node took (or may have taken), oldest first."""
        self.sent: list[str] = []
        """Every hash signed, in order (what `on_sent` was told)."""
        self.held: str | None = None
        """Why the last replacement did not happen (the cap, the node), if it did not."""
        self.bump_at = 0
        self._nonce_used_polls = 0

    # ------------------------------------------------------------------ sending

    def send(self) -> None:
        """Signs, records and broadcasts the first attempt."""
        attempt = self._sign(self.fees)
        self._record(attempt)
        result, exc = self._broadcast(attempt)
        self.bump_at = self._head() + self.settings.stuck_after_blocks
        if result in (SendResult.SENT, SendResult.KNOWN):
            self.live.append(attempt.tx_hash)
        elif result is SendResult.UNDERPRICED:
            self.replace("refused as underpriced")
            if not self.live:
                raise TxRefusedError(self.action, self.held or "refused as underpriced")
        elif result is SendResult.NONCE_TOO_LOW:
            raise NonceUsedError(self.action, self.account.address, self.nonce)
        elif exc is not None:
            raise exc

    def adopt(self, tx_hash: str) -> None:
        """Follows an attempt the node already holds (sent before a restart)."""
        self.live.append(tx_hash)
        self.bump_at = self._head() + self.settings.stuck_after_blocks

    def replace(self, reason: str) -> None:
        """Re-signs at the same nonce with bumped fees, records and broadcasts the attempt;
        bumps again at once while the node calls it underpriced."""
        self.bump_at = self._head() + self.settings.stuck_after_blocks
        for _ in range(QUICK_BUMPS):
            fees = bump_fees(
                self.fees, self.settings.fee_bump_pct, self._base_fee(), self.settings.max_fee_wei
            )
            if fees is None:
                self._hold(
                    f"the fee cap of {self.settings.max_fee_gwei} gwei leaves no room for a "
                    f"{MIN_BUMP_PCT}% bump over {self.fees} (raise --max-fee-gwei)"
                )
                return
            attempt = self._sign(fees)
            _log.info(
                "%s: nonce %d %s; replacing it: %s, tx %s",
                self.action, self.nonce, reason, fees, attempt.tx_hash,
            )  # fmt: skip
            self._record(attempt)
            result, exc = self._broadcast(attempt)
            if result is SendResult.UNDERPRICED:
                self.fees = fees
                reason = "refused as underpriced"
                continue
            if result in (SendResult.SENT, SendResult.KNOWN) or _maybe_sent(exc):
                self.fees = fees
                self.live.append(attempt.tx_hash)
                self.held = None
                return
            self._restore()
            if result is not SendResult.NONCE_TOO_LOW:  # too low: `wait` finds the receipt
                self._hold(f"the node refused the replacement ({exc})")
            return
        self._restore()
        self._hold(f"the node refused {QUICK_BUMPS} bumps in a row as underpriced")

    # ------------------------------------------------------------------ waiting

    def wait(self) -> tuple[str, TxReceipt]:
        """The hash and receipt of whichever attempt lands; replaces stuck ones meanwhile.
        TxTimeoutError after `receipt_timeout_s`, NonceUsedError if the nonce went to
        something else."""
        deadline = time.monotonic() + self.settings.receipt_timeout_s
        while True:
            landed = self._landed()
            if landed is not None:
                return landed
            self._check_nonce()
            if self._head() >= self.bump_at:
                self.replace(f"has no receipt after {self.settings.stuck_after_blocks} blocks")
            if time.monotonic() >= deadline:
                raise TxTimeoutError(self._timeout_text())
            time.sleep(POLL_S)

    def _landed(self) -> tuple[str, TxReceipt] | None:
        for tx_hash in reversed(self.live):
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                continue
            if receipt is not None and receipt.get("blockNumber") is not None:
                return tx_hash, receipt
        return None

    def _check_nonce(self) -> None:
        used = int(self.w3.eth.get_transaction_count(self.account.address, "latest")) > self.nonce
        self._nonce_used_polls = self._nonce_used_polls + 1 if used else 0
        if self._nonce_used_polls >= NONCE_USED_POLLS:
            raise NonceUsedError(self.action, self.account.address, self.nonce)

    def _timeout_text(self) -> str:
        latest = self.live[-1] if self.live else "none"
        attempts = len(set(self.sent + self.live))
        text = (
            f"{self.action}: no receipt within {self.settings.receipt_timeout_s:.0f} s for nonce "
            f"{self.nonce} of {self.account.address} after {attempts} attempt(s) "
            f"(latest {latest}, {self.fees})"
        )
        return text + (f"; not bumped further: {self.held}" if self.held else "")

    # ------------------------------------------------------------------ helpers

    def _sign(self, fees: Fees) -> Attempt:
        signed = self.account.sign_transaction(fees.apply(self.tx))
        return Attempt("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), fees)

    def _record(self, attempt: Attempt) -> None:
        self.sent.append(attempt.tx_hash)
        self.on_sent(attempt.tx_hash)

    def _restore(self) -> None:
        """Records the latest attempt the node took again (a newer one was refused)."""
        if self.live:
            self.on_sent(self.live[-1])

    def _hold(self, why: str) -> None:
        if why != self.held:
            _log.warning("%s: nonce %d is not replaced: %s", self.action, self.nonce, why)
        self.held = why

    def _broadcast(self, attempt: Attempt) -> tuple[SendResult, Exception | None]:
        try:
            self.w3.eth.send_raw_transaction(attempt.raw)
        except (Web3RPCError, ValueError, requests.RequestException, OSError) as exc:
            result = classify(exc)
            _log.debug("%s: broadcast of %s: %s (%s)", self.action, attempt.tx_hash, result, exc)
            return result, exc
        return SendResult.SENT, None

    def _head(self) -> int:
        return int(self.w3.eth.block_number)

    def _base_fee(self) -> int:
        block = self.w3.eth.get_block("latest")
        return int(block.get("baseFeePerGas") or 0)

"""The provider agent's transactions: the shared sender (`neurotoken.chain.sender`, where the
node's answers and replacement are explained, and `neurotoken.chain.fees`, the fee rule) with
the agent's settings, its state file as the journal, and its errors.

Each `MarketClient.transact` (or `resume`) follows one nonce of the agent's account until the
receipt of *any* attempt at it. When none lands within `stuck_after_blocks` blocks of the last
attempt, the transaction is re-signed with fees raised by `fee_bump_pct`, never above
`max_fee_gwei`; when the cap leaves no room for a bump nodes accept (10% at least), the agent
keeps waiting on what it sent and says so if the receipt timeout passes.

The journal is the agent's state file, through `on_sent(hash)`: it runs before each attempt is
broadcast (so a restart finds the latest hash), and again with the latest attempt the node
took when it refused a newer one, so the recorded hash is always one the node may mine.

What the node's answers become here: "nonce too low" for the first attempt, or the nonce used
by something else while waiting, is `NonceUsedError`; a first attempt refused as underpriced
with no replacement taken is `TxRefusedError`; any other refusal of the first attempt (a
connection failure, insufficient funds) is raised as it came; no receipt in time is
`TxTimeoutError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from neurotoken.chain.answers import SendResult
from neurotoken.chain.fees import GWEI, FeePolicy, Fees
from neurotoken.chain.sender import (
    DROPPED,
    Attempt,
    MemoryJournal,
    PendingTx,
    Sender,
    Sent,
)
from neurotoken.errors import ConfigError
from neurotoken.provider.errors import NonceUsedError, TxRefusedError, TxTimeoutError

_log = logging.getLogger("neurotoken.provider.sending")


@dataclass(frozen=True)
class TxSettings:
    """How the agent's transactions are followed and replaced."""

    receipt_timeout_s: float = 180.0
    """The longest wait for a receipt of any attempt (one call of transact or resume)."""
    stuck_after_blocks: int = 3
    """Blocks without a receipt after the last attempt before the fees are bumped."""
    fee_bump_pct: int = 25
    """How much each replacement raises the fees (nodes require at least 10)."""
    max_fee_gwei: float | None = 500.0
    """No attempt pays more per gas than this (None: no cap)."""

    def __post_init__(self) -> None:
        if self.receipt_timeout_s <= 0:
            raise ConfigError(f"the receipt timeout must be positive: {self.receipt_timeout_s}")
        if self.stuck_after_blocks < 1:
            raise ConfigError(f"stuck_after_blocks must be at least 1: {self.stuck_after_blocks}")
        if self.max_fee_gwei is not None and self.max_fee_gwei <= 0:
            raise ConfigError(f"the fee cap must be positive: {self.max_fee_gwei} gwei")
        self.policy()  # the bump, checked where the fee rule lives

    @property
    def max_fee_wei(self) -> int | None:
        return None if self.max_fee_gwei is None else int(self.max_fee_gwei * GWEI)

    def policy(self) -> FeePolicy:
        """The fee rule with these settings; the tip is the node's suggestion."""
        return FeePolicy(bump_pct=self.fee_bump_pct, max_fee=self.max_fee_wei, tip=None)


class StateFileJournal(MemoryJournal):
    """The sender's journal for the agent: in memory, and each hash told to `on_sent` (which
    writes it to the state file) before it is broadcast."""

    def __init__(self, on_sent: Callable[[str], None] | None) -> None:
        super().__init__()
        self.on_sent = on_sent or (lambda _hash: None)

    def record(self, tx: PendingTx, attempt: Attempt) -> None:
        super().record(tx, attempt)
        self.on_sent(attempt.hash)

    def refused(self, tx: PendingTx) -> None:
        live = tx.live
        if live:  # record again the latest attempt the node took
            self.on_sent(live[-1].hash)


class AgentEvents:
    """The sender's events as the agent's log lines (replacements and why one did not
    happen; the rest at debug level)."""

    def __init__(self, action: str, stuck_after_blocks: int) -> None:
        self.action = action
        self.reasons = {
            "stuck": f"has no receipt after {stuck_after_blocks} blocks",
            "underpriced": "refused as underpriced",
        }

    def __call__(self, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
        if name == "tx_replaced":
            reason = self.reasons.get(str(fields["reason"]), str(fields["reason"]))
            fees = Fees(fields["max_fee"], fields["priority_fee"])
            _log.info(
                "%s: nonce %d %s; replacing it: %s, tx %s",
                self.action, fields["nonce"], reason, fees, fields["new"],
            )  # fmt: skip
        elif name in ("tx_fee_cap_reached", "tx_not_replaced"):
            _log.warning(
                "%s: nonce %d is not replaced: %s", self.action, fields["nonce"], fields["why"]
            )
        else:
            _log.debug("%s: %s %s", self.action, name, fields)


def agent_sender(
    w3: Web3,
    account: LocalAccount,
    settings: TxSettings,
    action: str,
    on_sent: Callable[[str], None] | None,
    chain_id: int,
    on_broadcast: Callable[[], None] | None = None,
) -> Sender:
    """A sender for one transaction of the agent (`action`), recording through `on_sent`;
    `on_broadcast()` after each attempt is broadcast (fault injection, else None)."""
    return Sender(
        w3,
        account,
        StateFileJournal(on_sent),
        settings.policy(),
        chain_id=chain_id,
        stuck_after_blocks=settings.stuck_after_blocks,
        events=AgentEvents(action, settings.stuck_after_blocks),
        cap_hint=" (raise --max-fee-gwei)",
        on_broadcast=on_broadcast,
    )


def followed(sender: Sender, sent: Sent, settings: TxSettings) -> tuple[str, TxReceipt]:
    """The hash and receipt of whichever attempt of a transaction just sent lands (see the
    module docstring for the errors)."""
    tx, answer = sent
    if not tx.live:
        if answer.result is SendResult.NONCE_TOO_LOW:
            raise NonceUsedError(tx.kind, sender.address, tx.nonce)
        if answer.result is SendResult.UNDERPRICED:
            raise TxRefusedError(tx.kind, sender.held(tx) or "refused as underpriced")
    if answer.error is not None and answer.result not in (
        SendResult.KNOWN,
        SendResult.UNDERPRICED,
    ):
        raise answer.error
    return landed(sender, tx, settings)


def landed(sender: Sender, tx: PendingTx, settings: TxSettings) -> tuple[str, TxReceipt]:
    """The hash and receipt of whichever attempt of `tx` lands, replacing it while it is
    stuck; TxTimeoutError after `receipt_timeout_s`, NonceUsedError if the nonce went to
    something else."""
    outcome = sender.wait(tx, settings.receipt_timeout_s)
    if outcome is None:
        raise TxTimeoutError(_timeout_text(sender, tx, settings))
    if outcome.status == DROPPED or outcome.tx_hash is None or outcome.receipt is None:
        raise NonceUsedError(tx.kind, sender.address, tx.nonce)
    return outcome.tx_hash, outcome.receipt


def _timeout_text(sender: Sender, tx: PendingTx, settings: TxSettings) -> str:
    live = tx.live
    latest = live[-1].hash if live else "none"
    text = (
        f"{tx.kind}: no receipt within {settings.receipt_timeout_s:.0f} s for nonce "
        f"{tx.nonce} of {sender.address} after {len(tx.attempts)} attempt(s) "
        f"(latest {latest}, {tx.highest.fees})"
    )
    held = sender.held(tx)
    return text + (f"; not bumped further: {held}" if held else "")

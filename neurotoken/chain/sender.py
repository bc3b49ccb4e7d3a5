"""The one transaction sender of this repository: the oracle, the provider agent and
`oracle settle` sign, record, broadcast, follow and replace their transactions here. (The ape
scripts sign through ape's accounts instead, after `neurotoken.chain.preflight`.)

A `Sender` holds one account: a local nonce, a fee policy (`neurotoken.chain.fees`: one rule
in integers for first attempts and replacements, capped), a `Journal` and the node.

The rule that makes crashes harmless: every attempt is signed and *recorded* in the journal
(nonce, raw bytes, hash, fees) before it is broadcast, and so is every fee replacement. After
a restart the sender therefore knows every hash it may have sent; following a transaction
looks for the receipt of *any* of its attempts, or broadcasts the latest again. What
"recorded" means is the journal's: the oracle's store (durable, in the same database
transaction that moves the jobs to `submitted`), the provider agent's state file (its
`on_sent` callback), or memory (`MemoryJournal`, for `oracle settle`, which follows its
transactions to the end in one run).

Node answers (read by `neurotoken.chain.answers.classify`):

* "already known" / "already imported": the node has it; nothing to do.
* "nonce too low": that nonce is used. If one of our attempts holds it, its receipt will
  show; if not, something else used it: after `NONCE_USED_POLLS` looks without a receipt the
  transaction ends `dropped` (the oracle plans its jobs again; the agent raises
  NonceUsedError). The local nonce is resynchronised from the chain.
* "replacement transaction underpriced", or a max fee below the base fee: replace now with
  fees bumped from the current base fee, again while the node says so (`QUICK_BUMPS` in a row
  at most).
* "insufficient funds", or any other refusal: the attempt is not in the node's pool; the
  journal hears of it (`Journal.refused`) and it is broadcast again on a later look.
* a connection error: unknown whether it arrived; a later look broadcasts it again if the
  node does not know it.

Following (`follow`, one look; `poll` looks at every pending transaction, `wait` at one until
it ends): a transaction without a receipt `stuck_after_blocks` blocks after its highest-fee
attempt was signed is replaced with fees raised by the policy's `bump_pct` (nodes require at
least 10%), never above the cap; when the cap leaves no room, the sender keeps following what
it sent and says why once (`tx_fee_cap_reached`).

What happens is told to an `Events` sink as named events with fields (`tx_recorded`,
`tx_broadcast`, `tx_broadcast_refused`, `tx_replaced`, `tx_fee_cap_reached`,
`tx_not_replaced`, `tx_mined`, `tx_reverted`, `tx_dropped`, `nonce_synced`): the oracle writes
them as JSON log lines, the agent as sentences.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import requests
from eth_account.datastructures import SignedTransaction
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from neurotoken.chain.answers import SendResult, classify
from neurotoken.chain.fees import FeePolicy, Fees
from neurotoken.errors import ConfigError

MINED = "mined"
REVERTED = "reverted"
DROPPED = "dropped"
NONCE_USED_POLLS = 3
"""Looks that see the nonce used without a receipt of ours before the transaction is dropped."""
QUICK_BUMPS = 5
"""Replacements refused as underpriced in a row before waiting for blocks again."""
POLL_S = 0.25
"""The pause between two looks of `wait`."""


class Signer(Protocol):
    """A key that signs transactions (eth-account's LocalAccount, the oracle's OracleKey)."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, transaction_dict: dict[str, Any]) -> SignedTransaction: ...


class Events(Protocol):
    """Where a sender tells what happened: an event name, a log level and fields."""

    def __call__(self, name: str, level: int = logging.INFO, /, **fields: Any) -> None: ...


def log_events(logger: logging.Logger) -> Events:
    """Events as plain log lines: `name key=value ...`."""

    def tell(name: str, level: int = logging.INFO, /, **fields: Any) -> None:
        if logger.isEnabledFor(level):
            logger.log(level, "%s %s", name, " ".join(f"{k}={v}" for k, v in fields.items()))

    return tell


@dataclass(frozen=True)
class Call:
    """What a transaction does; the same in every attempt at its nonce."""

    to: str
    data: bytes
    gas: int
    value: int = 0


@dataclass(frozen=True)
class Attempt:
    """One signed version of a transaction (the fees differ between attempts)."""

    hash: str
    raw: bytes
    """The signed bytes (empty for an attempt adopted from the node that cannot be re-made)."""
    fees: Fees
    sent_block: int
    """The head when it was signed (or adopted): the stuck clock starts there."""


@dataclass(eq=False)
class PendingTx:
    """One nonce of the sender's account and every attempt signed at it."""

    nonce: int
    call: Call
    kind: str
    """What it does, for people and for the caller ("settle", "acceptJob(7)")."""
    job_ids: list[int] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    id: int | None = None
    """The journal's id for it, once recorded (the oracle's store sets one)."""
    refused: set[str] = field(default_factory=set)
    """Hashes of attempts the node refused outright (as far as this process saw)."""

    @property
    def highest(self) -> Attempt:
        """The attempt with the highest max fee: what a replacement raises."""
        return max(self.attempts, key=lambda a: a.fees.max_fee)

    @property
    def live(self) -> list[Attempt]:
        """The attempts the node took or may have taken, oldest first."""
        return [a for a in self.attempts if a.hash not in self.refused]


@dataclass(frozen=True)
class Outcome:
    """A transaction that reached an end: mined (status 1), reverted (status 0) or dropped
    (its nonce used by something else)."""

    tx: PendingTx
    status: str
    tx_hash: str | None
    block_number: int | None
    receipt: TxReceipt | None = None


class Answer(NamedTuple):
    """The node's answer to one broadcast."""

    result: SendResult
    error: Exception | None = None

    @property
    def taken(self) -> bool:
        """The node has the attempt, or may have it (a connection failure)."""
        if self.result in (SendResult.SENT, SendResult.KNOWN):
            return True
        return isinstance(self.error, requests.RequestException | OSError)


class Sent(NamedTuple):
    tx: PendingTx
    answer: Answer
    """The node's answer to the first attempt (replacements may have followed)."""


class Journal(Protocol):
    """Where a sender records its transactions. `record` must have done its work when it
    returns: the attempt is broadcast right after."""

    def record(self, tx: PendingTx, attempt: Attempt) -> None:
        """Keeps `attempt` (already the last of `tx.attempts`) before it is broadcast; the
        first attempt opens the transaction (and may set `tx.id`)."""

    def refused(self, tx: PendingTx) -> None:
        """The node refused the latest attempt(s) of `tx` outright: `tx.live` says which it
        may still hold."""

    def finish(self, outcome: Outcome) -> None:
        """The transaction reached an end."""

    def pending(self) -> list[PendingTx]:
        """The transactions without an end, each with every attempt recorded."""


class MemoryJournal:
    """A journal in memory, for a process that follows its transactions to their end (a
    crash loses it: the chain then says what happened)."""

    def __init__(self) -> None:
        self._open: list[PendingTx] = []

    def record(self, tx: PendingTx, attempt: Attempt) -> None:
        if not any(t is tx for t in self._open):
            self._open.append(tx)

    def refused(self, tx: PendingTx) -> None:
        pass

    def finish(self, outcome: Outcome) -> None:
        self._open = [t for t in self._open if t is not outcome.tx]

    def pending(self) -> list[PendingTx]:
        return list(self._open)


class Sender:
    """Signs, records, broadcasts, follows and replaces the transactions of one account (see
    the module docstring)."""

    def __init__(
        self,
        w3: Web3,
        signer: Signer,
        journal: Journal,
        policy: FeePolicy,
        *,
        chain_id: int,
        stuck_after_blocks: int = 3,
        events: Events | None = None,
        on_broadcast: Callable[[], None] | None = None,
        on_replaced: Callable[[], None] | None = None,
        cap_hint: str = "",
    ) -> None:
        if stuck_after_blocks < 1:
            raise ConfigError(f"stuck_after_blocks must be at least 1: {stuck_after_blocks}")
        self.w3 = w3
        self.signer = signer
        self.journal = journal
        self.policy = policy
        self.chain_id = chain_id
        self.stuck_after_blocks = stuck_after_blocks
        self.events: Events = events or log_events(logging.getLogger("neurotoken.chain.sender"))
        self.on_broadcast = on_broadcast
        """Called after each attempt (first or replacement) is handed to the node (the
        oracle's crash tests hook in here)."""
        self.on_replaced = on_replaced
        """Called after each fee replacement is handed to the node, whatever it answered."""
        self.cap_hint = cap_hint
        """Said after "the fee cap leaves no room": how to raise it (an option's name)."""
        self.nonce = 0
        """The nonce of the next transaction (`sync` sets it from the chain)."""
        self.replacements = 0
        self._address: ChecksumAddress = to_checksum_address(signer.address)
        self._nonce_used: dict[tuple[int | None, int], int] = {}
        self._held: dict[tuple[int | None, int], str] = {}

    @property
    def address(self) -> str:
        return str(self._address)

    # ------------------------------------------------------------------ nonce and fees

    def sync(self) -> int:
        """Sets the local nonce from the chain and the journal's pending transactions."""
        chain_nonce = self._nonce_at("pending")
        pending = self.journal.pending()
        self.nonce = max([chain_nonce] + [tx.nonce + 1 for tx in pending])
        self.events("nonce_synced", nonce=self.nonce, chain_nonce=chain_nonce, pending=len(pending))
        return self.nonce

    def pending(self) -> list[PendingTx]:
        return self.journal.pending()

    def fees(self) -> Fees:
        """A first attempt's fees now (`FeePolicy.initial` over the latest block)."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base is None:
            return self.policy.initial(None, int(self.w3.eth.gas_price))
        suggested = 0 if self.policy.tip is not None else int(self.w3.eth.max_priority_fee)
        return self.policy.initial(int(base), suggested)

    def held(self, tx: PendingTx) -> str | None:
        """Why `tx` was not replaced when it was due (the cap, the node), if it was not."""
        return self._held.get(self._key(tx))

    # ------------------------------------------------------------------ sending

    def send(
        self,
        call: Call,
        kind: str,
        job_ids: Sequence[int] = (),
        head: int | None = None,
        fees: Fees | None = None,
    ) -> Sent:
        """Signs `call` at the local nonce, records it, then broadcasts it; an answer of
        "underpriced" replaces it at once, "nonce too low" resynchronises the nonce."""
        head = self._head() if head is None else head
        tx = PendingTx(self.nonce, call, kind, list(job_ids))
        attempt = self._sign(tx, fees or self.fees(), head)
        self._record(tx, attempt)
        self.nonce += 1
        self.events(
            "tx_recorded",
            tx_id=tx.id,
            nonce=tx.nonce,
            kind=kind,
            jobs=tx.job_ids,
            hash=attempt.hash,
            max_fee=attempt.fees.max_fee,
        )
        answer = self._broadcast_now(attempt)
        if not answer.taken:
            tx.refused.add(attempt.hash)
        if answer.result is SendResult.UNDERPRICED:
            self.replace(tx, head, "underpriced")
        elif not answer.taken:
            self.journal.refused(tx)
            if answer.result is SendResult.NONCE_TOO_LOW:
                self.sync()
        return Sent(tx, answer)

    def broadcast(self, attempt: Attempt) -> Answer:
        """Hands `attempt` to the node and reads its answer."""
        try:
            self.w3.eth.send_raw_transaction(attempt.raw)
        except (Web3RPCError, ValueError, requests.RequestException, OSError) as exc:
            result = classify(exc)
            self.events(
                "tx_broadcast_refused",
                logging.INFO if result is SendResult.KNOWN else logging.WARNING,
                hash=attempt.hash,
                result=result.value,
                error=str(exc)[:200],
            )
            return Answer(result, exc)
        self.events("tx_broadcast", hash=attempt.hash)
        return Answer(SendResult.SENT)

    def replace(self, tx: PendingTx, head: int, reason: str) -> Attempt | None:
        """Re-signs `tx` at its nonce with fees bumped over its highest attempt, records the
        new attempt, broadcasts it; bumps again at once while the node calls it underpriced.
        Returns the attempt the node took (or may have taken), if one."""
        for _ in range(QUICK_BUMPS):
            old = tx.highest
            fees = self.policy.bump(old.fees, self._base_fee())
            if fees is None:
                why = self.policy.no_room(old.fees) + self.cap_hint
                self._hold(tx, "tx_fee_cap_reached", why, old.fees.max_fee)
                return None
            attempt = self._sign(tx, fees, head)
            self._record(tx, attempt)
            self.replacements += 1
            self.events(
                "tx_replaced",
                tx_id=tx.id,
                nonce=tx.nonce,
                reason=reason,
                old=old.hash,
                new=attempt.hash,
                max_fee=fees.max_fee,
                priority_fee=fees.priority_fee,
            )
            answer = self._broadcast_now(attempt)
            if self.on_replaced is not None:
                self.on_replaced()
            if answer.taken:
                self._held.pop(self._key(tx), None)
                return attempt
            tx.refused.add(attempt.hash)
            if answer.result is SendResult.UNDERPRICED:
                reason = "underpriced"
                continue
            self.journal.refused(tx)
            if answer.result is SendResult.NONCE_TOO_LOW:  # the receipt shows, or it is dropped
                self.sync()
            else:
                why = f"the node refused the replacement ({answer.error})"
                self._hold(tx, "tx_not_replaced", why, fees.max_fee)
            return None
        self.journal.refused(tx)
        why = f"the node refused {QUICK_BUMPS} bumps in a row as underpriced"
        self._hold(tx, "tx_not_replaced", why, tx.highest.fees.max_fee)
        return None

    def abandon(self, tx: PendingTx) -> None:
        """Gives up `tx`, whose every attempt the node refused: it ends `dropped` and the
        local nonce is resynchronised (its nonce is free again)."""
        self._finish(tx, DROPPED, None, None)
        self.sync()

    # ------------------------------------------------------------------ following

    def follow(self, tx: PendingTx, head: int, latest_nonce: int) -> Outcome | None:
        """One look at `tx`: its end when it has one (a receipt of any attempt; its nonce used
        by something else, `NONCE_USED_POLLS` looks in a row); otherwise it is replaced when
        stuck, or its highest attempt broadcast again when the node does not know it.
        `latest_nonce`: the account's nonce at the latest block."""
        key = self._key(tx)
        landed = self._landed(tx)
        if landed is not None:
            tx_hash, receipt = landed
            status = MINED if int(receipt["status"]) == 1 else REVERTED
            return self._finish(tx, status, tx_hash, receipt)
        if latest_nonce > tx.nonce:
            # The nonce is used but none of our attempts has a receipt: look again (a node may
            # answer the nonce before the receipt), then give it up.
            seen = self._nonce_used.get(key, 0) + 1
            self._nonce_used[key] = seen
            if seen >= NONCE_USED_POLLS:
                return self._finish(tx, DROPPED, None, None)
            return None
        self._nonce_used.pop(key, None)
        last = tx.highest
        if head - last.sent_block >= self.stuck_after_blocks:
            self.replace(tx, head, "stuck")
        elif last.raw and not self._known(last.hash):
            answer = self.broadcast(last)
            if answer.taken:
                tx.refused.discard(last.hash)
            elif answer.result is SendResult.UNDERPRICED:
                self.replace(tx, head, "underpriced")
            elif answer.result is SendResult.NONCE_TOO_LOW:
                self.sync()
        return None

    def poll(self, head: int) -> list[Outcome]:
        """One look at every pending transaction of the journal; returns those that ended."""
        pending = self.journal.pending()
        if not pending:
            return []
        latest_nonce = self._nonce_at("latest")
        outcomes = []
        for tx in pending:
            outcome = self.follow(tx, head, latest_nonce)
            if outcome is not None:
                outcomes.append(outcome)
        if self.nonce < latest_nonce:
            self.nonce = latest_nonce
        return outcomes

    def wait(self, tx: PendingTx, timeout_s: float, poll_s: float = POLL_S) -> Outcome | None:
        """Looks at `tx` until it ends (its outcome) or `timeout_s` passes (None)."""
        deadline = time.monotonic() + timeout_s
        while True:
            outcome = self.follow(tx, self._head(), self._nonce_at("latest"))
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)

    def adopt(self, node_tx: Mapping[str, Any], kind: str, head: int | None = None) -> PendingTx:
        """Follows a transaction of this account that the node holds (sent before a restart),
        from its fields as `eth_getTransactionByHash` returns them; it is not recorded again."""
        tx_hash = HexBytes(node_tx["hash"]).to_0x_hex()
        kind_ = int(node_tx.get("type", 0))
        if kind_ not in (0, 2) or node_tx.get("accessList"):
            raise ConfigError(
                f"transaction {tx_hash} (type {kind_}, with an access list?) is not one this "
                "sender builds: it re-signs only type 0 and 2 transactions without access lists"
            )
        call = Call(
            to=str(node_tx["to"]),
            data=bytes(HexBytes(node_tx["input"])),
            gas=int(node_tx["gas"]),
            value=int(node_tx["value"]),
        )
        tx = PendingTx(int(node_tx["nonce"]), call, kind)
        head = self._head() if head is None else head
        attempt = self._sign(tx, Fees.of(node_tx), head)
        if attempt.hash != tx_hash:  # signed otherwise: follow it, never broadcast it again
            attempt = Attempt(tx_hash, b"", attempt.fees, head)
        tx.attempts.append(attempt)
        return tx

    # ------------------------------------------------------------------ helpers

    def _key(self, tx: PendingTx) -> tuple[int | None, int]:
        return (tx.id, tx.nonce)

    def _sign(self, tx: PendingTx, fees: Fees, head: int) -> Attempt:
        signed = self.signer.sign_transaction(
            {
                "chainId": self.chain_id,
                "nonce": tx.nonce,
                "to": tx.call.to,
                "value": tx.call.value,
                "data": tx.call.data,
                "gas": tx.call.gas,
                **fees.fields(),
            }
        )
        return Attempt(
            "0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), fees, sent_block=head
        )

    def _record(self, tx: PendingTx, attempt: Attempt) -> None:
        tx.attempts.append(attempt)
        try:
            self.journal.record(tx, attempt)
        except BaseException:
            tx.attempts.pop()  # never broadcast what was not recorded
            raise

    def _broadcast_now(self, attempt: Attempt) -> Answer:
        answer = self.broadcast(attempt)
        if self.on_broadcast is not None:
            self.on_broadcast()
        return answer

    def _hold(self, tx: PendingTx, name: str, why: str, max_fee: int) -> None:
        key = self._key(tx)
        if self._held.get(key) != why:
            self.events(
                name, logging.WARNING, tx_id=tx.id, nonce=tx.nonce, max_fee=max_fee, why=why
            )
        self._held[key] = why

    def _finish(
        self, tx: PendingTx, status: str, tx_hash: str | None, receipt: TxReceipt | None
    ) -> Outcome:
        block = None if receipt is None else int(receipt["blockNumber"])
        outcome = Outcome(tx, status, tx_hash, block, receipt)
        self.journal.finish(outcome)
        key = self._key(tx)
        self._nonce_used.pop(key, None)
        self._held.pop(key, None)
        if status == DROPPED:
            self.events("tx_dropped", logging.WARNING, tx_id=tx.id, nonce=tx.nonce, jobs=tx.job_ids)
        else:
            self.events(
                "tx_" + status,
                tx_id=tx.id,
                hash=tx_hash,
                block=block,
                nonce=tx.nonce,
                jobs=tx.job_ids,
            )
        return outcome

    def _landed(self, tx: PendingTx) -> tuple[str, TxReceipt] | None:
        for attempt in reversed(tx.attempts):
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(attempt.hash))
            except TransactionNotFound:
                continue
            if receipt is not None and receipt.get("blockNumber") is not None:
                return attempt.hash, receipt
        return None

    def _known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def _head(self) -> int:
        return int(self.w3.eth.block_number)

    def _base_fee(self) -> int:
        return int(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)

    def _nonce_at(self, block: str) -> int:
        return int(self.w3.eth.get_transaction_count(self._address, block))  # type: ignore[arg-type]

"""Operating the compute market: the typed core behind `ape run market ...` and the demo.

Everything here takes ape contract handles (or plain values) and returns plain values or
raises `MarketOperationError` with a message that says what was wrong and what to do.
neurotoken.chain.explain turns a reverted call's custom error into such a sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address

from neurotoken.chain.preflight import preflight as chain_preflight
from neurotoken.errors import ChainError, NeurotokenError
from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import (
    MarketDomain,
    QuorumNotReachedError,
    SignedVerdict,
    Verdict,
    VerdictError,
    assemble_quorum,
)
from neurotoken.proofs import economics
from neurotoken.units import format_duration, format_ntk, format_when

ZERO_ADDRESS = "0x" + "00" * 20
DEFAULT_MIN_VERDICT_WINDOW = 3600
"""The shortest verdict window a market deployed here allows (seconds): room for the seed
block, confirmations, verification and settlement."""


class MarketOperationError(NeurotokenError):
    """A user mistake or a refusal, with a message that says what to do."""


# ---------------------------------------------------------------- parsing


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> int:
    """'90' or '90s', '30m', '6h', '7d', '2w' -> seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise MarketOperationError(f"{text!r} is not a duration; write it like 90s, 30m, 6h or 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_bytes32(text: str, what: str) -> bytes:
    raw = text.removeprefix("0x")
    try:
        value = bytes.fromhex(raw)
    except ValueError as exc:
        raise MarketOperationError(f"{what} must be 32 bytes of hex, got {text!r}") from exc
    if len(value) != 32:
        raise MarketOperationError(f"{what} must be 32 bytes of hex, got {len(value)} bytes")
    return value


# ---------------------------------------------------------------- deployment


def deploy_market(
    project: Any,
    *,
    token: Any,
    owner: str,
    sender: Any,
    oracles: Sequence[str],
    threshold: int,
    fee_bps: int = 250,
    unbonding_delay: int = 7 * 86_400,
    min_verdict_window: int = DEFAULT_MIN_VERDICT_WINDOW,
) -> Any:
    """Deploys a ComputeMarket after checking the arguments the constructor would refuse."""
    if not oracles:
        raise MarketOperationError("give at least one oracle (--oracle ADDRESS, repeatable)")
    if len({to_checksum_address(o) for o in oracles}) != len(oracles):
        raise MarketOperationError("the oracle list has a duplicate address")
    if not (len(oracles) < 2 * threshold and threshold <= len(oracles)):
        raise MarketOperationError(
            f"the threshold must be more than half of the oracles and at most all of them "
            f"({len(oracles) // 2 + 1} to {len(oracles)} for {len(oracles)}), got {threshold}"
        )
    if not 60 <= min_verdict_window <= 365 * 86_400:
        raise MarketOperationError("the minimum verdict window is between 1 minute and 1 year")
    if not 0 <= fee_bps <= 1_000:
        raise MarketOperationError(f"the fee is at most 1,000 bps (10%), got {fee_bps}")
    if not 0 <= unbonding_delay <= 90 * 86_400:
        raise MarketOperationError("the unbonding delay is at most 90 days")
    return project.ComputeMarket.deploy(
        token,
        owner,
        unbonding_delay,
        fee_bps,
        list(oracles),
        threshold,
        min_verdict_window,
        sender=sender,
    )


def minimum_collateral(payment: int, shard_count: int, challenge_count: int) -> int:
    """The contract's `minimumCollateral` (`neurotoken.proofs.economics.minimum_collateral`):
    the least collateral a job may ask for, so that faking even one shard (f = 1/N, caught
    with probability k/N) loses money when the outside value of a corrupted result equals the
    payment and compute costs at most the payment."""
    try:
        return economics.minimum_collateral(payment, shard_count, challenge_count)
    except ValueError as exc:
        raise MarketOperationError(str(exc)) from exc


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobView(OnChainJob):
    """A job as stored (IComputeMarket.Job, decoded once: `OnChainJob`), told for a person:
    its state's name, what can happen next, the lines `ape run market status` prints."""

    @property
    def label(self) -> str:
        """The state's Solidity name, e.g. 'Posted'."""
        return self.state.label

    def next_steps(self, now: int) -> list[str]:
        """What can happen to the job now, and who can do it."""
        if self.label == "Posted":
            who = "any registered provider" if self.provider == ZERO_ADDRESS else self.provider
            if now <= self.accept_by:
                return [
                    f"{who} may accept it until {_until(self.accept_by, now)}",
                    "the client may cancel it",
                ]
            return [
                "nobody accepted it in time: anyone may expire it (refund)",
                "or the client cancels",
            ]
        if self.label == "Accepted":
            if now <= self.deliver_by:
                return [f"the provider must submit a result by {_until(self.deliver_by, now)}"]
            return ["no result in time: anyone may expire it (refund, collateral slashed)"]
        if self.label == "Submitted":
            if now <= self.verdict_by:
                return [f"oracles may settle it until {_until(self.verdict_by, now)}"]
            return ["no verdict in time: anyone may expire it (refund, collateral back, no fault)"]
        return ["settled: nothing more can happen"]

    def lines(self, now: int) -> list[str]:
        out = [
            f"job {self.job_id}: {self.label}",
            f"  client      {self.client}",
            f"  provider    {self.provider if self.provider != ZERO_ADDRESS else '(any)'}",
            f"  payment     {format_ntk(self.payment_ntk)} (fee {self.fee_bps / 100:g}%)",
            f"  collateral  {format_ntk(self.collateral_ntk)}",
            f"  spec hash   0x{self.spec_hash.hex()}",
            f"  shards      {self.shard_count}, {self.challenge_count} challenged",
            f"  accept by   {format_when(self.accept_by)}",
            f"  deliver by  {format_when(self.deliver_by)}",
            f"  verdict by  {format_when(self.verdict_by)} (now {format_when(now)})",
        ]
        if self.seed_block:
            out.append(f"  result root 0x{self.result_root.hex()} (seed block {self.seed_block})")
        return out + [f"  next: {step}" for step in self.next_steps(now)]


def _until(deadline: int, now: int) -> str:
    """A deadline for a person: '2026-11-29 18:00:00 UTC (1h 5m left)'."""
    return f"{format_when(deadline)} ({format_duration(deadline - now)} left)"


def job_view(market: Any, job_id: int) -> JobView:
    next_id = int(market.nextJobId())
    if not 1 <= job_id < next_id:
        raise MarketOperationError(
            f"there is no job {job_id}; job ids run from 1 to {next_id - 1}"
            if next_id > 1
            else "no job has been posted on this market yet"
        )
    job = market.getJob(job_id)
    return JobView(
        job_id=job_id,
        client=str(job.client),
        payment_ntk=int(job.paymentNtk),
        provider=str(job.provider),
        collateral_ntk=int(job.collateralNtk),
        spec_hash=bytes(job.specHash),
        result_root=bytes(job.resultRoot),
        state=JobState(int(job.state)),
        accept_by=int(job.acceptBy),
        deliver_by=int(job.deliverBy),
        verdict_by=int(job.verdictBy),
        seed_block=int(job.seedBlock),
        shard_count=int(job.shardCount),
        challenge_count=int(job.challengeCount),
        fee_bps=int(job.feeBps),
        oracle_epoch=int(job.oracleEpoch),
        threshold=int(job.threshold),
    )


def challenge_of(market: Any, job_id: int, head_block: int) -> tuple[bytes, list[int]] | None:
    """The seed and the challenged shards once readable (None before the seed block has a
    successor, or once out of reach and not fixed)."""
    view = job_view(market, job_id)
    if not view.seed_block or head_block <= view.seed_block:
        return None
    try:
        return bytes(market.challengeSeed(job_id)), [
            int(i) for i in market.challengedShards(job_id)
        ]
    except Exception:  # out of reach and never fixed: the job can only lapse
        return None


def check_payment(token: Any, payer: Any, market: Any, amount: int, *, permit: bool) -> None:
    """Refuses, with advice, a post or a stake the payer cannot fund."""
    balance = int(token.balanceOf(payer))
    if balance < amount:
        raise MarketOperationError(
            f"{payer} holds {format_ntk(balance)}, less than the {format_ntk(amount)} needed"
        )
    if not permit:
        allowance = int(token.allowance(payer, market))
        if allowance < amount:
            raise MarketOperationError(
                f"the market may spend only {format_ntk(allowance)} of {payer}'s NTK; pass "
                f"--approve to approve {format_ntk(amount)} first"
                + (", or --permit to sign a permit in the same transaction" if amount else "")
            )


# ---------------------------------------------------------------- verdicts


def load_signed(paths: Iterable[Path]) -> list[SignedVerdict]:
    """Signed verdicts from files: each a JSON object (SignedVerdict.to_json) or a list of
    them; a directory contributes its *.json files."""
    out: list[SignedVerdict] = []
    for path in paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise MarketOperationError(f"cannot read {file}: {exc}") from exc
            for item in data if isinstance(data, list) else [data]:
                try:
                    out.append(SignedVerdict.from_json(json.dumps(item)))
                except VerdictError as exc:
                    raise MarketOperationError(f"{file}: {exc}") from exc
    if not out:
        raise MarketOperationError("no signed verdicts found in the files given")
    return out


@dataclass(frozen=True)
class Settlement:
    """What to send: `settle(job, accepted, signatures)` or `settleBatch(entries, signatures)`."""

    kind: str
    entries: tuple[tuple[int, bool], ...]
    signatures: tuple[bytes, ...]

    def send(self, market: Any, sender: Any) -> Any:
        if self.kind == "verdict":
            ((job_id, accepted),) = self.entries
            return market.settle(job_id, accepted, list(self.signatures), sender=sender)
        return market.settleBatch(list(self.entries), list(self.signatures), sender=sender)


def prepare_settlement(market: Any, chain_id: int, signed: Sequence[SignedVerdict]) -> Settlement:
    """Checks signed verdicts against the chain as the contract will, and assembles them.

    Refuses signatures for another chain or market, verdicts over a root other than the
    job's committed one or a seed other than its challenge seed, jobs not awaiting a verdict,
    and fewer than the jobs' threshold of distinct oracles of their oracle epoch. Signatures
    by others are dropped, not sent.
    """
    domain = MarketDomain(chain_id, str(market.address))
    first = signed[0]
    for item in signed:
        if item.domain != domain:
            raise MarketOperationError(
                f"a verdict by {item.signer} is for chain {item.domain.chain_id} and market "
                f"{item.domain.market}, not chain {chain_id} and market {market.address}"
            )
    threshold = 0
    for verdict in first.verdicts:
        view = job_view(market, verdict.job_id)
        threshold = max(threshold, view.threshold)
        if view.label != "Submitted":
            raise MarketOperationError(
                f"job {verdict.job_id} is {view.label}, not awaiting a verdict"
            )
        if view.result_root != verdict.result_root:
            raise MarketOperationError(
                f"the verdict on job {verdict.job_id} is over root 0x{verdict.result_root.hex()}, "
                f"but the job committed 0x{view.result_root.hex()}"
            )
        seed = bytes(market.challengeSeed(verdict.job_id))
        if verdict.seed != seed:
            raise MarketOperationError(
                f"the verdict on job {verdict.job_id} judged seed 0x{verdict.seed.hex()}, "
                f"but the job's challenge seed is 0x{seed.hex()}"
            )
    signers = {to_checksum_address(item.signer) for item in signed}
    job_id = first.verdicts[0].job_id
    oracles = [s for s in signers if market.isJobOracle(job_id, s)]
    try:
        signatures = assemble_quorum(signed, oracles=oracles, threshold=threshold)
    except QuorumNotReachedError as exc:
        strangers = sorted(signers - set(oracles))
        hint = f" (not oracles: {', '.join(strangers)})" if strangers else ""
        raise MarketOperationError(f"no quorum: {exc}{hint}") from exc
    except VerdictError as exc:
        raise MarketOperationError(str(exc)) from exc
    entries = tuple((v.job_id, v.accepted) for v in first.verdicts)
    return Settlement(first.kind, entries, tuple(signatures))


def verdict_to_sign(market: Any, job_id: int, accepted: bool) -> Verdict:
    """The verdict an oracle signs for `job_id`, over the root the job committed."""
    view = job_view(market, job_id)
    if view.label != "Submitted":
        raise MarketOperationError(
            f"job {job_id} is {view.label}; only a submitted job gets a verdict"
        )
    return Verdict(job_id, view.result_root, bytes(market.challengeSeed(job_id)), accepted)


def sign_typed(account: Any, full_message: dict[str, Any]) -> bytes:
    """A 65-byte (r, s, v) EIP-712 signature by an ape account (a keyfile account shows the
    message and asks first)."""
    signature = account.sign_message(encode_typed_data(full_message=full_message))
    if signature is None:
        raise MarketOperationError(f"{account.address} did not sign")
    r, s = bytes(signature.r).rjust(32, b"\0"), bytes(signature.s).rjust(32, b"\0")
    return r + s + bytes([int(signature.v)])


# ---------------------------------------------------------------- reverts in plain words


def preflight(
    market: Any, method: str, *args: Any, sender: str, extra_types: Sequence[Any] = ()
) -> None:
    """neurotoken.chain.preflight.preflight for a market call: MarketOperationError with the
    reason if calling `method` now would revert."""
    try:
        chain_preflight(market, method, *args, sender=sender, extra_types=extra_types)
    except ChainError as exc:
        raise MarketOperationError(str(exc)) from None

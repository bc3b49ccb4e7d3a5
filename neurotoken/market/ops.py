"""Operating the compute market: the typed core behind `ape run market ...` and the demo.

Everything here takes ape contract handles (or plain values) and returns plain values or
raises `MarketOperationError` with a message that says what was wrong and what to do.
neurotoken.chain.explain turns a reverted call's custom error into such a sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address

from neurotoken.chain.headers import BlockHeaderError, header_at
from neurotoken.chain.preflight import preflight as chain_preflight
from neurotoken.errors import ChainError, NeurotokenError
from neurotoken.market.acceptance import (
    REQUEST_FIELDS,
    AcceptanceError,
    acceptance_signer,
    quoted_job,
)
from neurotoken.market.job import OnChainJob
from neurotoken.market.records import JobReader, JobRecordError, contract_abi
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
DEFAULT_RANDAO_DELAY = 32
"""Blocks from a commit to its seed block, whose RANDAO mix seeds the challenges: knowing the
seed when committing takes every one of those 32 slots (docs/proofs.md, section 4)."""
MAX_RANDAO_DELAY = 64
"""The contract's MAX_RANDAO_DELAY."""
SLOT_SECONDS = 12
"""The contract's SLOT_SECONDS: what each delayed block adds to the least verdict window."""


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
    randao_delay: int = DEFAULT_RANDAO_DELAY,
) -> Any:
    """Deploys a ComputeMarket after checking the arguments the constructor would refuse
    (with a RANDAO delay, the market creates its RandaoRecorder: `market.randaoRecorder()`)."""
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
    check_randao_delay(randao_delay, min_verdict_window)
    return project.ComputeMarket.deploy(
        token,
        owner,
        unbonding_delay,
        fee_bps,
        list(oracles),
        threshold,
        min_verdict_window,
        randao_delay,
        sender=sender,
    )


def check_randao_delay(randao_delay: int, min_verdict_window: int) -> None:
    """Refuses what the constructor would (MarketInvalidRandaoDelay), saying what to change."""
    if not 0 <= randao_delay <= MAX_RANDAO_DELAY:
        raise MarketOperationError(
            f"the RANDAO delay is 0 (block-hash seeds) to {MAX_RANDAO_DELAY} blocks, "
            f"got {randao_delay}"
        )
    least = 60 + SLOT_SECONDS * randao_delay
    if min_verdict_window < least:
        raise MarketOperationError(
            f"a RANDAO delay of {randao_delay} blocks needs a minimum verdict window of at "
            f"least {least} s (1 minute plus {SLOT_SECONDS} s a block), got {min_verdict_window}"
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
    """A job's record (IComputeMarket.Job, rebuilt from its events: `OnChainJob`), told for a
    person: its state's name, what can happen next, the lines `ape run market status` prints.
    An ended job's view is its last record, with the state its ending event left."""

    @classmethod
    def of(cls, job: OnChainJob) -> JobView:
        return cls(**{f.name: getattr(job, f.name) for f in fields(OnChainJob)})

    @property
    def label(self) -> str:
        """The state's Solidity name, e.g. 'Posted'."""
        return self.state.label

    def next_steps(self, now: int) -> list[str]:
        """What can happen to the job now, and who can do it."""
        if self.state == JobState.POSTED:
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
        if self.state == JobState.ACCEPTED:
            if now <= self.deliver_by:
                return [f"the provider must submit a result by {_until(self.deliver_by, now)}"]
            return ["no result in time: anyone may expire it (refund, collateral slashed)"]
        if self.state == JobState.SUBMITTED:
            if now <= self.verdict_by:
                return [f"oracles may settle it until {_until(self.verdict_by, now)}"]
            return ["no verdict in time: anyone may expire it (refund, collateral back, no fault)"]
        return ["ended: nothing more can happen to it"]

    def lines(self, now: int) -> list[str]:
        out = [
            f"job {self.job_id}: {self.label}",
            f"  client      {self.client}",
            f"  provider    {self.provider if self.provider != ZERO_ADDRESS else '(any)'}",
            f"  payment     {format_ntk(self.payment_ntk)} (fee {self.fee_bps / 100:g}%)",
            f"  collateral  {format_ntk(self.collateral_ntk)}",
            f"  spec hash   0x{self.spec_hash.hex()}",
            f"  shards      {self.shard_count}, {self.challenge_count} challenged",
            f"  oracles     epoch {self.oracle_epoch}, {self.threshold} signatures to settle",
            f"  accept by   {format_when(self.accept_by)}",
            f"  deliver by  {format_when(self.deliver_by)}",
            f"  verdict by  {format_when(self.verdict_by)} (now {format_when(now)})",
        ]
        if self.seed_block:
            out.append(f"  result root 0x{self.result_root.hex()} (seed block {self.seed_block})")
        return out + [f"  next: {step}" for step in self.next_steps(now)]

    def require_open(self) -> JobView:
        """Itself if the job is open; else MarketOperationError (an ended job takes no call:
        the market keeps nothing of it but its events)."""
        if not self.is_open:
            raise MarketOperationError(
                f"job {self.job_id} has ended ({self.label}): nothing more can happen to it "
                f"(`ape run market status {self.job_id}` shows it)"
            )
        return self


def _until(deadline: int, now: int) -> str:
    """A deadline for a person: '2026-11-29 18:00:00 UTC (1h 5m left)'."""
    return f"{format_when(deadline)} ({format_duration(deadline - now)} left)"


def market_reader(market: Any, from_block: int = 0) -> JobReader:
    """A JobReader of the ape contract handle `market` over its provider, reading events from
    `from_block` (the market's deployment block when known: fewer blocks to search)."""
    return JobReader(market.provider.web3, str(market.address), contract_abi(market), from_block)


def job_view(market: Any, job_id: int, reader: JobReader | None = None) -> JobView:
    """Job `job_id`'s current record, rebuilt from its events and checked against the digest
    the market stores (an ended job: its last record, in the state its ending left).
    MarketOperationError for an id never posted, or when the events and the digest disagree
    (a node whose logs lag its state: ask again)."""
    next_id = int(market.nextJobId())
    if not 1 <= job_id < next_id:
        raise MarketOperationError(
            f"there is no job {job_id}; job ids run from 1 to {next_id - 1}"
            if next_id > 1
            else "no job has been posted on this market yet"
        )
    try:
        job = (reader or market_reader(market)).get(job_id)
    except JobRecordError as exc:
        raise MarketOperationError(str(exc)) from None
    return JobView.of(job)


def seed_block_header(market: Any, view: OnChainJob, head_block: int) -> bytes:
    """The RLP header of the job's seed block, which records its RANDAO mix (the job's
    challenge seed on a RANDAO market) in the market's RandaoRecorder; MarketOperationError
    when the job has no result yet or the block is not mined or cannot be rebuilt."""
    if not view.seed_block:
        raise MarketOperationError(f"job {view.job_id} has no result yet: nothing seeds it")
    if head_block < view.seed_block:
        raise MarketOperationError(
            f"job {view.job_id}'s seed block {view.seed_block} is not mined yet (head "
            f"{head_block}): run this again once it is"
        )
    try:
        return header_at(market.provider.web3, view.seed_block)
    except BlockHeaderError as exc:
        raise MarketOperationError(f"cannot record the seed block's mix: {exc}") from None


def record_seed_mixes(
    recorder: Any, market: Any, jobs: Sequence[OnChainJob], sender: Any
) -> list[int]:
    """On a RANDAO-seeded market (`recorder`: its RandaoRecorder, an ape contract), records
    the mix of each job's seed block not recorded yet, once per block; returns the blocks
    recorded. Anyone may; oracles do it before they verify."""
    head = int(market.provider.web3.eth.block_number)
    done: list[int] = []
    for job in jobs:
        block = job.seed_block
        if block in done or int.from_bytes(bytes(recorder.mixOf(block)), "big"):
            continue
        recorder.record(seed_block_header(market, job, head), sender=sender)
        done.append(block)
    return done


def challenge_of(market: Any, view: OnChainJob, head_block: int) -> tuple[bytes, list[int]] | None:
    """The seed and the challenged shards of the job whose record is `view`, once readable
    (None before it has a result, before the seed block has a successor, or once the seed is
    out of reach and was never fixed). An ended job's last record still gives them."""
    if not view.seed_block or head_block <= view.seed_block:
        return None
    try:
        seed = bytes(market.challengeSeed(view.job_id, view.seed_block))
        shards = [int(i) for i in market.challengedShards(view.job_id, view.record())]
    except Exception:  # out of reach and never fixed: the job can only lapse
        return None
    return seed, shards


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


# ---------------------------------------------------------------- quotes


@dataclass(frozen=True)
class QuoteRequest:
    """A job request written for its provider to quote (`ape run market post --request-out`).

    The file is one JSON object: the JobRequest's fields under their Solidity names (amounts in
    wei and deadlines in unix seconds as integers, `specHash` as 0x hex, `provider` the
    quoting provider), and beside them `client` (the account that will post it: the provider's
    acceptance binds it), `chainId` and `market` (the acceptance's EIP-712 domain). The
    provider signs `neurotoken.market.acceptance.quoted_job(request, client, ...)` with the
    market's fee, oracle epoch and threshold; the client posts exactly this request with that
    signature (`post --request FILE --acceptance 0x...`)."""

    request: dict[str, Any]
    """The JobRequest as the contract takes it (`specHash` as bytes)."""
    client: str | None = None
    chain_id: int | None = None
    market: str | None = None

    def to_json(self) -> str:
        fields_ = {
            k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in self.request.items()
        }
        extra = {"client": self.client, "chainId": self.chain_id, "market": self.market}
        extra = {k: v for k, v in extra.items() if v is not None}
        return json.dumps({**fields_, **extra}, indent=2)

    @classmethod
    def read(cls, path: Path) -> QuoteRequest:
        """The request in file `path`; MarketOperationError naming what is missing or wrong."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise MarketOperationError(f"cannot read the request {path}: {exc}") from None
        if not isinstance(data, dict):
            raise MarketOperationError(f"{path} is not a job request (a JSON object)")
        missing = [k for k in REQUEST_FIELDS if k not in data]
        if missing:
            raise MarketOperationError(
                f"{path} is not a whole job request: no {', '.join(missing)}"
            )
        request: dict[str, Any] = {}
        for key in REQUEST_FIELDS:
            value = data[key]
            if key == "specHash":
                request[key] = parse_bytes32(str(value), f"{path}: specHash")
            elif key == "specURI":
                request[key] = str(value)
            elif key == "provider":
                request[key] = _address(value, f"{path}: provider")
            else:
                request[key] = _whole(value, f"{path}: {key}")
        client = data.get("client")
        chain_id = data.get("chainId")
        market = data.get("market")
        return cls(
            request,
            None if client is None else _address(client, f"{path}: client"),
            None if chain_id is None else _whole(chain_id, f"{path}: chainId"),
            None if market is None else _address(market, f"{path}: market"),
        )

    def check_for(self, client: str, domain: MarketDomain, what: str) -> None:
        """Refuses to post the request from another account, chain or market than the one it
        was written for (an acceptance binds all three)."""
        if self.chain_id is not None and self.chain_id != domain.chain_id:
            raise MarketOperationError(
                f"{what} was written for chain {self.chain_id}, not this network's chain "
                f"{domain.chain_id}: choose its --network"
            )
        if self.market is not None and self.market != to_checksum_address(domain.market):
            raise MarketOperationError(
                f"{what} was written for market {self.market}, not {domain.market}: pass "
                f"--market {self.market}"
            )
        if self.client is not None and self.client != to_checksum_address(client):
            raise MarketOperationError(
                f"{what} was written for client {self.client} (the provider's acceptance binds "
                f"it), not {client}: post it with that account"
            )


def _address(value: Any, what: str) -> str:
    try:
        return to_checksum_address(str(value))
    except ValueError:
        raise MarketOperationError(f"{what} must be an address, got {value!r}") from None


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MarketOperationError(f"{what} must be a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise MarketOperationError(f"{what} must be a whole number, got {value!r}") from None
    if number < 0:
        raise MarketOperationError(f"{what} must not be negative, got {number}")
    return number


def parse_acceptance(text: str) -> bytes:
    """A provider's acceptance as given on the command line: 0x and 130 hex digits, or a quote
    file holding it as "acceptance" (what `python -m neurotoken.provider agent quote --out`
    writes)."""
    given = text.strip()
    if not given.startswith("0x") and Path(given).is_file():
        try:
            document = json.loads(Path(given).read_text())
        except (OSError, ValueError) as exc:
            raise MarketOperationError(f"cannot read the quote {given}: {exc}") from None
        value = document.get("acceptance") if isinstance(document, dict) else None
        if not isinstance(value, str):
            raise MarketOperationError(f'{given} holds no "acceptance" (0x hex)')
        given = value.strip()
    try:
        signature = bytes.fromhex(given.removeprefix("0x"))
    except ValueError:
        raise MarketOperationError(
            "--acceptance must be the provider's signature in hex (0x and 130 hex digits) or a "
            f"quote file holding it, got {text!r}"
        ) from None
    if len(signature) != 65:
        raise MarketOperationError(
            f"--acceptance must be a 65-byte signature (0x and 130 hex digits), got "
            f"{len(signature)} bytes"
        )
    return signature


@dataclass(frozen=True)
class MarketTerms:
    """What the market stamps on a job when it lands: the fee, the oracle epoch and the
    threshold in force (an acceptance covers them)."""

    fee_bps: int
    oracle_epoch: int
    threshold: int

    @classmethod
    def current(cls, market: Any) -> MarketTerms:
        return cls(int(market.feeBps()), int(market.oracleEpoch()), int(market.threshold()))

    def __str__(self) -> str:
        return (
            f"fee {self.fee_bps} bps, oracle epoch {self.oracle_epoch}, threshold {self.threshold}"
        )


def past_terms(market: Any, from_block: int = 0) -> list[MarketTerms]:
    """Every fee, oracle epoch and threshold combination the market's governance events
    (FeeSet, OracleAdded/OracleRemoved, ThresholdSet) since `from_block` make possible, the
    current one excluded: the terms an old quote may have been signed under."""
    now = MarketTerms.current(market)
    stop = int(market.provider.get_block("latest").number) + 1
    fees, epochs, thresholds = {now.fee_bps}, {now.oracle_epoch}, {now.threshold}
    for log in market.FeeSet.range(from_block, stop):
        fees |= {int(log.oldFeeBps), int(log.newFeeBps)}
    for log in market.ThresholdSet.range(from_block, stop):
        thresholds |= {int(log.oldThreshold), int(log.newThreshold)}
    for event in (market.OracleAdded, market.OracleRemoved):
        for log in event.range(from_block, stop):
            epochs |= {int(log.epoch) - 1, int(log.epoch)}
    return [
        MarketTerms(fee, epoch, threshold)
        for epoch in sorted(epochs, reverse=True)
        for fee in sorted(fees)
        for threshold in sorted(thresholds)
        if epoch >= 1 and MarketTerms(fee, epoch, threshold) != now
    ]


def check_acceptance(
    market: Any,
    request: Mapping[str, Any],
    client: str,
    acceptance: bytes,
    *,
    chain_id: int,
    at: int,
    from_block: int = 0,
    rebuilt: bool = False,
) -> OnChainJob:
    """The record a quoted post of `request` by `client` will get, once the provider's
    `acceptance` is checked off chain as the market will check it (at timestamp `at`, the next
    block's). MarketOperationError, saying what to do, when the quote has expired (its
    acceptBy), when it is another key's signature, when the request differs from what the
    provider signed (`rebuilt`: the request was built anew from flags, its deadlines from now),
    or when governance changed the fee, oracle epoch or threshold since it was signed."""
    provider = str(request["provider"])
    if int(provider, 16) == 0:
        raise MarketOperationError(
            "a quoted job names its provider: pass --provider, the address that signed the "
            "acceptance"
        )
    provider = to_checksum_address(provider)
    accept_by = int(request["acceptBy"])
    if at > accept_by:
        raise MarketOperationError(
            f"the quote has expired: its accept-by {format_when(accept_by)} has passed (now "
            f"{format_when(at)}); ask the provider for a new quote on a new request "
            "(--request-out)"
        )
    domain = MarketDomain(chain_id, str(market.address))
    terms = MarketTerms.current(market)

    def signer_under(t: MarketTerms) -> tuple[OnChainJob, str | None]:
        try:
            job = quoted_job(
                request,
                client,
                fee_bps=t.fee_bps,
                oracle_epoch=t.oracle_epoch,
                threshold=t.threshold,
            )
        except AcceptanceError as exc:
            raise MarketOperationError(str(exc)) from None
        try:
            return job, to_checksum_address(acceptance_signer(domain, job, acceptance))
        except Exception:  # not a signature at all (r or s out of range): nobody signed it
            return job, None

    job, signer = signer_under(terms)
    if signer == provider:
        return job
    for earlier in past_terms(market, from_block):
        if signer_under(earlier)[1] == provider:
            raise MarketOperationError(
                f"the market's terms changed since {provider} quoted: it signed for "
                f"{earlier}, the market now has {terms} (governance changed them); ask the "
                "provider for a new quote"
            )
    if signer is None:
        raise MarketOperationError(
            f"the acceptance is not a signature (it recovers to no address): ask {provider} "
            "for its quote again"
        )
    if _known(market, signer, client):
        raise MarketOperationError(
            f"the acceptance was signed by {signer}, not by {provider}, the provider the "
            f"request names: only the provider's own signature commits its stake; ask "
            f"{provider} for its quote"
        )
    hint = (
        "a request rebuilt from flags gets new deadlines and never matches a quote: post the "
        "quoted file with --request FILE"
        if rebuilt
        else f"post exactly the request it quoted, from the account it names ({client} here)"
    )
    raise MarketOperationError(
        f"the acceptance is not {provider}'s signature of this request: the request (its "
        f"amounts, spec, shards or deadlines), the client or the market differ from what was "
        f"signed; {hint}"
    )


def _known(market: Any, account: str, client: str) -> bool:
    """Whether `account` is someone on this chain (the client, a registered provider, or an
    account that has sent transactions): a signature over other terms than these recovers to
    an address nobody uses."""
    if account == to_checksum_address(client) or market.getProvider(account).registered:
        return True
    return int(market.provider.get_nonce(account)) > 0


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
class SettlementEntry:
    """One job of a settlement: its id, its current record and the verdict."""

    job_id: int
    record: tuple[int, int, int, bytes, bytes]
    accepted: bool


@dataclass(frozen=True)
class Settlement:
    """What to send: `settle(jobId, job, accepted, signatures)` for one verdict, or
    `settleBatch(entries, signatures)` for a batch; each job with the record read for it."""

    kind: str
    entries: tuple[SettlementEntry, ...]
    signatures: tuple[bytes, ...]

    def call(self) -> tuple[str, tuple[Any, ...]]:
        """The market method and its arguments."""
        if self.kind == "verdict":
            (entry,) = self.entries
            return "settle", (entry.job_id, entry.record, entry.accepted, list(self.signatures))
        batch = [(e.job_id, e.record, e.accepted) for e in self.entries]
        return "settleBatch", (batch, list(self.signatures))

    def send(self, market: Any, sender: Any) -> Any:
        method, args = self.call()
        return getattr(market, method)(*args, sender=sender)


def prepare_settlement(
    market: Any, chain_id: int, signed: Sequence[SignedVerdict], reader: JobReader | None = None
) -> Settlement:
    """Checks signed verdicts against the chain as the contract will, and assembles them with
    each job's current record (read from its events).

    Refuses signatures for another chain or market, a job twice, verdicts over a root other
    than the job's committed one or a seed other than its challenge seed, jobs not awaiting a
    verdict, a batch mixing oracle epochs, and fewer than the jobs' threshold of distinct
    oracles of their oracle epoch. Signatures by others are dropped, not sent.
    """
    domain = MarketDomain(chain_id, str(market.address))
    first = signed[0]
    for item in signed:
        if item.domain != domain:
            raise MarketOperationError(
                f"a verdict by {item.signer} is for chain {item.domain.chain_id} and market "
                f"{item.domain.market}, not chain {chain_id} and market {market.address}"
            )
    reader = reader or market_reader(market)
    views: list[JobView] = []
    for verdict in first.verdicts:
        if any(v.job_id == verdict.job_id for v in views):
            raise MarketOperationError(f"job {verdict.job_id} is in the batch twice")
        view = job_view(market, verdict.job_id, reader)
        if view.state != JobState.SUBMITTED:
            raise MarketOperationError(
                f"job {verdict.job_id} is {view.label}, not awaiting a verdict"
            )
        if view.result_root != verdict.result_root:
            raise MarketOperationError(
                f"the verdict on job {verdict.job_id} is over root 0x{verdict.result_root.hex()}, "
                f"but the job committed 0x{view.result_root.hex()}"
            )
        seed = bytes(market.challengeSeed(view.job_id, view.seed_block))
        if verdict.seed != seed:
            raise MarketOperationError(
                f"the verdict on job {verdict.job_id} judged seed 0x{verdict.seed.hex()}, "
                f"but the job's challenge seed is 0x{seed.hex()}"
            )
        if views and view.oracle_epoch != views[0].oracle_epoch:
            raise MarketOperationError(
                f"job {view.job_id} is of oracle epoch {view.oracle_epoch}, job "
                f"{views[0].job_id} of {views[0].oracle_epoch}: a batch settles jobs of one "
                "oracle epoch; sign and settle them separately"
            )
        views.append(view)
    epoch, threshold = views[0].oracle_epoch, max(v.threshold for v in views)
    signers = {to_checksum_address(item.signer) for item in signed}
    oracles = [s for s in signers if market.isEpochOracle(epoch, s)]
    try:
        signatures = assemble_quorum(signed, oracles=oracles, threshold=threshold)
    except QuorumNotReachedError as exc:
        strangers = sorted(signers - set(oracles))
        hint = f" (not oracles: {', '.join(strangers)})" if strangers else ""
        raise MarketOperationError(f"no quorum: {exc}{hint}") from exc
    except VerdictError as exc:
        raise MarketOperationError(str(exc)) from exc
    entries = tuple(
        SettlementEntry(view.job_id, view.record(), verdict.accepted)
        for view, verdict in zip(views, first.verdicts, strict=True)
    )
    return Settlement(first.kind, entries, tuple(signatures))


def verdict_to_sign(market: Any, view: JobView, accepted: bool) -> Verdict:
    """The verdict an oracle signs on the job whose record is `view`: over the root it
    committed and its challenge seed."""
    if view.state != JobState.SUBMITTED:
        raise MarketOperationError(
            f"job {view.job_id} is {view.label}; only a submitted job gets a verdict"
        )
    seed = bytes(market.challengeSeed(view.job_id, view.seed_block))
    return Verdict(view.job_id, view.result_root, seed, accepted)


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

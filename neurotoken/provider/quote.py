"""Quotes: this provider accepts a job before its client posts it.

A client sends the job request it means to post (`IComputeMarket.JobRequest`, deadlines
absolute, `provider` this agent's address) and its own address. The agent checks it as it
checks a posted job before accepting it (the spec fetched and hash-checked, every rule of the
policy), plus what only a quote needs: the request names this provider, the market would take
it, its acceptBy has not passed and is at most `Policy.max_quote_s` ahead, and the free stake
covers the collateral. The work is judged as if it started at acceptBy, the latest the job can
land. Then it signs, with the key that sends its transactions, the EIP-712 `Acceptance` of the
record the job will have (`neurotoken.market.acceptance`), with the fee, oracle epoch and
threshold the market has now: the client posts the request with that signature
(`postAcceptedJob`) and the job starts Accepted, this provider's collateral locked.

A quote is recorded in the state folder, and until it is posted or its acceptBy passes it
counts as a job in hand (capacity, queued work, and its collateral held back from the free
stake) for the jobs the agent accepts and the quotes it signs; the spec it verified is kept
there too, so the job can be computed even if the client's spec server goes away.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils.address import is_address, to_checksum_address

from neurotoken.market.acceptance import (
    REQUEST_FIELDS,
    REQUEST_UINT_BITS,
    acceptance_signer,
    quoted_job,
)
from neurotoken.market.job import ZERO_ADDRESS, OnChainJob
from neurotoken.provider.errors import AgentError, ChainRevertError, NotRegisteredError
from neurotoken.provider.policy import evaluate
from neurotoken.provider.spec_fetch import Refusal, SpecRefusedError
from neurotoken.provider.state import QuoteRecord
from neurotoken.units import format_ntk, format_when

if TYPE_CHECKING:
    from neurotoken.provider.agent import ProviderAgent


MAX_JOB_DURATION_S = 365 * 86_400
"""The market's MAX_JOB_DURATION: verdictBy at most this far ahead when the job is posted."""

#: What the client (or the provider) can do about each refusal.
HINTS: Mapping[Refusal, str] = {
    Refusal.REQUEST_INVALID: "fix the request (the market would not post it as it is)",
    Refusal.RESERVED_FOR_OTHER: "set the request's provider to this provider's address",
    Refusal.ACCEPT_WINDOW_CLOSED: "ask again with a later acceptBy",
    Refusal.QUOTE_TOO_LONG: "ask again with an earlier acceptBy (or raise max_quote_s)",
    Refusal.SPEC_UNAVAILABLE: "serve the spec at its URI and ask again",
    Refusal.SPEC_URI_UNSUPPORTED: "use a file, http(s) or data: URI for the spec",
    Refusal.SPEC_HASH_MISMATCH: "the spec URI must serve the exact bytes of the spec hash",
    Refusal.SPEC_INVALID: "fix the spec",
    Refusal.KIND_UNKNOWN: "fix the spec's kind",
    Refusal.SHARD_COUNT_MISMATCH: "set shardCount to the spec's shard count",
    Refusal.KIND_NOT_OFFERED: "ask a provider that offers this kind (or change --kinds)",
    Refusal.SPEC_UNPAYABLE: "oracles could not verify it: change the spec or the challenge count",
    Refusal.TOO_MANY_SHARDS: "split the job (or raise --max-shards)",
    Refusal.PRICE_TOO_LOW: "offer a higher payment (or lower --min-price-per-shard)",
    Refusal.COLLATERAL_TOO_HIGH: "ask for less collateral (or raise --max-collateral)",
    Refusal.STAKE_TOO_LOW: "add stake (`agent add-stake AMOUNT`) or ask again after jobs settle",
    Refusal.BUSY: "ask again when jobs in hand are done (or raise max_active_jobs)",
    Refusal.DEADLINE_TOO_SOON: "ask again with a later deliverBy",
}


class QuoteRefusedError(AgentError):
    """The agent will not quote the request; `reasons` says why (each with what to do)."""

    def __init__(self, reasons: Sequence[tuple[Refusal, str]]) -> None:
        self.reasons = tuple(reasons)
        lines = [
            f"  {code.value}: {detail} -> {HINTS.get(code, 'ask again')}"
            for code, detail in self.reasons
        ]
        super().__init__("no quote:\n" + "\n".join(lines))

    @property
    def codes(self) -> list[Refusal]:
        return [code for code, _ in self.reasons]


@dataclass(frozen=True)
class Quote:
    """A signed quote: the request, the record it accepts and the acceptance signature."""

    request: dict[str, Any]
    """The JobRequest as `postAcceptedJob` takes it (specHash as bytes)."""
    job: OnChainJob
    """The record the job will have (`quoted_job`; its id is not part of it)."""
    acceptance: bytes
    signer: str
    market: str
    chain_id: int
    estimate_s: float

    def to_json(self) -> dict[str, Any]:
        """What the client gets: everything it needs to post, and the record signed."""
        client_payment, provider_collateral, terms, spec_hash, _ = self.job.record()
        job = self.job
        return {
            "acceptance": "0x" + self.acceptance.hex(),
            "provider": self.signer,
            "client": job.client,
            "market": self.market,
            "chainId": self.chain_id,
            "request": {
                **self.request,
                "specHash": "0x" + bytes(self.request["specHash"]).hex(),
            },
            "record": {
                "clientAndPayment": hex(client_payment),
                "providerAndCollateral": hex(provider_collateral),
                "terms": hex(terms),
                "specHash": "0x" + spec_hash.hex(),
                "resultRoot": "0x" + job.result_root.hex(),
            },
            "terms": {
                "state": job.state.name,
                "feeBps": job.fee_bps,
                "oracleEpoch": job.oracle_epoch,
                "threshold": job.threshold,
            },
            "digest": "0x" + job.digest().hex(),
            "validUntil": job.accept_by,
        }


def parse_request(document: Any) -> dict[str, Any]:
    """The JobRequest in `document` (its fields at the top level, or under "request"), typed
    for the market's ABI; QuoteRefusedError (REQUEST_INVALID) says every field that is not."""
    if isinstance(document, Mapping) and isinstance(document.get("request"), Mapping):
        document = document["request"]
    if not isinstance(document, Mapping):
        raise QuoteRefusedError(
            [(Refusal.REQUEST_INVALID, "a job request is a JSON object of JobRequest's fields")]
        )
    problems: list[str] = []
    missing = [name for name in REQUEST_FIELDS if name not in document]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    request: dict[str, Any] = {}
    for name in REQUEST_FIELDS:
        if name not in document:
            continue
        value = document[name]
        if name == "specHash":
            raw = _hex_bytes(value)
            if raw is None or len(raw) != 32:
                problems.append("specHash is not 32 bytes of 0x-hex")
            else:
                request[name] = raw
        elif name == "specURI":
            if not isinstance(value, str) or not value:
                problems.append("specURI is not a non-empty string")
            else:
                request[name] = value
        elif name == "provider":
            if not isinstance(value, str) or not is_address(value):
                problems.append("provider is not an address")
            else:
                request[name] = to_checksum_address(value)
        else:
            number = _uint(value)
            if number is None or number >= 1 << REQUEST_UINT_BITS[name]:
                problems.append(f"{name} is not a uint{REQUEST_UINT_BITS[name]}")
            else:
                request[name] = number
    if problems:
        raise QuoteRefusedError([(Refusal.REQUEST_INVALID, "; ".join(problems))])
    return request


def make_quote(agent: ProviderAgent, document: Any, client: str | None = None) -> Quote:
    """Checks the job request in `document` for `client` (default: the `client` the request
    file names, as `ape run market post --request-out` writes it) and signs its acceptance (see
    the module docstring); QuoteRefusedError says every reason it is not quoted. The quote is
    recorded in the agent's state (unless the agent only looks)."""
    request = parse_request(document)
    chain = agent.client
    client = _binding(document, client, chain.chain_id, chain.market_address)
    me = chain.address
    if request["provider"].lower() != me.lower():
        named = (
            "no provider (posted to anyone)"
            if request["provider"] == to_checksum_address(ZERO_ADDRESS)
            else request["provider"]
        )
        raise QuoteRefusedError(
            [(Refusal.RESERVED_FOR_OTHER, f"the request names {named}; this provider is {me}")]
        )
    if not chain.get_provider().registered:
        raise NotRegisteredError(me)
    now = chain.timestamp()
    reasons = _request_problems(agent, request, now)
    policy = agent.config.policy
    accept_by = int(request["acceptBy"])
    if accept_by < now:
        reasons.append((Refusal.ACCEPT_WINDOW_CLOSED, f"acceptBy {accept_by} < now {now}"))
    elif accept_by - now > policy.max_quote_s:
        reasons.append(
            (
                Refusal.QUOTE_TOO_LONG,
                f"acceptBy is {accept_by - now} s away; quotes stand at most "
                f"{policy.max_quote_s} s",
            )
        )
    if any(code is Refusal.REQUEST_INVALID for code, _ in reasons):
        raise QuoteRefusedError(reasons)  # the record cannot be built, or not posted anyway
    terms = chain.market_terms()
    job = quoted_job(
        request,
        client,
        fee_bps=terms.fee_bps,
        oracle_epoch=terms.oracle_epoch,
        threshold=terms.threshold,
    )
    digest = "0x" + job.digest().hex()
    estimate_s = 0.0
    try:
        fetched = agent.load_spec(job, request["specURI"])
    except SpecRefusedError as exc:
        reasons.append((exc.code, exc.detail))
    else:
        capacity = agent.capacity(now, besides=digest)
        decision = evaluate(job, fetched.spec, policy, capacity, now, start=accept_by)
        estimate_s = decision.estimate_s
        known = {code for code, _ in reasons}
        reasons += [(code, text) for code, text in decision.reasons if code not in known]
    if reasons:
        raise QuoteRefusedError(reasons)
    acceptance = chain.sign_acceptance(job)
    domain = chain.domain()
    if acceptance_signer(domain, job, acceptance).lower() != me.lower():  # never expected
        raise AgentError("the acceptance does not recover to this provider's address")
    if not agent.config.read_only:
        agent.state.add_quote(
            QuoteRecord(
                digest=digest,
                client=client,
                spec_uri=str(request["specURI"]),
                spec_hash="0x" + job.spec_hash.hex(),
                collateral_ntk=job.collateral_ntk,
                accept_by=job.accept_by,
                estimate_s=estimate_s,
                job_id=None,
                signed_at=time.time(),
            )
        )
    agent.echo(
        f"quoted {job.shard_count} shards for {format_ntk(job.payment_ntk)} to {client}, "
        f"{format_ntk(job.collateral_ntk)} collateral, good until acceptBy "
        f"{format_when(job.accept_by)}"
    )
    return Quote(request, job, acceptance, me, chain.market_address, chain.chain_id, estimate_s)


def _binding(document: Any, client: str | None, chain_id: int, market: str) -> str:
    """The client the quote binds: `client`, else the file's; a file written for another
    client, chain or market is refused (the acceptance would not hold there)."""
    written = document if isinstance(document, Mapping) else {}
    problems: list[str] = []
    named = written.get("client")
    if named is not None and not (isinstance(named, str) and is_address(named)):
        problems.append("client is not an address")
        named = None
    if client is not None and not is_address(client):
        raise ValueError(f"client {client!r} is not an address")
    if client is None and named is None:
        problems.append("no client: give the address that will post it (--client 0x...)")
    elif client is not None and named is not None and client.lower() != str(named).lower():
        problems.append(f"the request was written for client {named}, not {client}")
    if "chainId" in written and _uint(written["chainId"]) != chain_id:
        problems.append(f"the request was written for chain {written['chainId']}, not {chain_id}")
    if "market" in written and str(written["market"]).lower() != market.lower():
        problems.append(f"the request was written for market {written['market']}, not {market}")
    if problems:
        raise QuoteRefusedError([(Refusal.REQUEST_INVALID, p) for p in problems])
    return to_checksum_address(str(client or named))


def _request_problems(
    agent: ProviderAgent, request: Mapping[str, Any], now: int
) -> list[tuple[Refusal, str]]:
    """What the market's `postJob` checks would refuse in `request` (deadlines as of `now`;
    acceptBy's own window is judged by the caller)."""
    problems: list[str] = []
    payment = int(request["paymentNtk"])
    shards, challenges = int(request["shardCount"]), int(request["challengeCount"])
    if payment == 0:
        problems.append("paymentNtk is zero")
    if not any(request["specHash"]):
        problems.append("specHash is zero")
    if not 1 <= challenges <= shards:
        problems.append(f"challengeCount {challenges} is not between 1 and shardCount {shards}")
    else:
        try:
            least = agent.client.minimum_collateral(payment, shards, challenges)
        except ChainRevertError as exc:
            problems.append(str(exc))
        else:
            if int(request["collateralNtk"]) < least:
                problems.append(
                    f"collateralNtk {format_ntk(int(request['collateralNtk']))} is below the "
                    f"market's minimum {format_ntk(least)}"
                )
    accept_by, deliver_by = int(request["acceptBy"]), int(request["deliverBy"])
    verdict_by = int(request["verdictBy"])
    if not accept_by < deliver_by < verdict_by:
        problems.append("deadlines must satisfy acceptBy < deliverBy < verdictBy")
    elif verdict_by - deliver_by < agent.client.min_verdict_window():
        problems.append(
            f"verdictBy - deliverBy is {verdict_by - deliver_by} s, under the market's "
            f"minimum {agent.client.min_verdict_window()} s"
        )
    if verdict_by > now + MAX_JOB_DURATION_S:
        problems.append("verdictBy is more than a year ahead")
    return [(Refusal.REQUEST_INVALID, p) for p in problems]


def _hex_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _uint(value: Any) -> int | None:
    """A JSON number, or a decimal or 0x-hex string, that is a non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        try:
            number = int(value, 16) if value.startswith("0x") else int(value, 10)
        except ValueError:
            return None
        return number if number >= 0 else None
    return None

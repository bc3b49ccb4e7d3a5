"""Chainlink's request + fulfill round trip, the reference for a job's lifecycle gas (issue 14).

Chainlink's own `Operator` (npm `@chainlink/contracts`, compiled by solc 0.8.19 as its pragma
asks), its `LinkToken` (ERC-677) and a consumer on `ChainlinkClient` that asks for one uint256,
as Chainlink's "Get > Uint256" example does (contracts/reference/Chainlink*.sol), deployed on
the benchmark's chain. The round trip measured:

- request: the consumer's `requestVolumeData()` builds the request (CBOR) and
  `sendChainlinkRequest` pays the fee with LINK `transferAndCall` to the Operator, whose
  `onTokenTransfer` runs `oracleRequest` (commitment stored, `OracleRequest` logged);
- fulfill: the node (an authorized sender of the Operator) calls `fulfillOracleRequest`
  with the value (one bytes32), the answer to an `oracleRequest` (data version 1); the Operator
  checks and deletes the commitment and calls the consumer back, which records the value.
  Issue 14's 46,973 for the fulfill is within a few hundred gas of this call here; the
  multi-word `fulfillOracleRequest2`, which Chainlink's current job specs send, costs some
  1,000 more (calldata: the data repeats the request id). Both are measured.

The figures are of a steady state, as a market job's are: the consumer has been answered
before (its value slot is set, so the callback changes it) and the Operator already holds
LINK. The consumer's first round trip is measured too and given in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import BenchContext, Table, gas_used, ratio

LINK = 10**18
FEE = LINK // 10  # 0.1 LINK, the example's fee
JOB_ID = b"ca98366cc7314957b8c012c72f05aeeb"  # the example's job id: 32 ASCII bytes
# Chainlink's Operator refuses a fulfillment sent with less gas than this left.
FULFILL_GAS_LIMIT = 500_000
ISSUE_REQUEST, ISSUE_FULFILL = 132_170, 46_973  # Chainlink's figures quoted in issue 14


@dataclass
class RoundTrip:
    """Gas of one request and its fulfillment, and the value the consumer recorded."""

    request: int
    fulfill: int
    value: int

    @property
    def total(self) -> int:
        return self.request + self.fulfill


@dataclass
class ChainlinkFigures:
    """The steady-state round trip (the reference), the same answered through
    `fulfillOracleRequest2`, and the consumer's first round trip."""

    steady: RoundTrip
    fulfill2: int
    first: RoundTrip


class ChainlinkReference:
    """LINK, an Operator with one authorized node, and a funded consumer."""

    def __init__(self, ctx: BenchContext) -> None:
        project, owner = ctx.project, ctx.owner
        self.ctx = ctx
        (self.node,) = ctx.fresh_accounts(1)
        self.link = project.ChainlinkLinkTokenReference.deploy(sender=owner)
        self.operator = project.ChainlinkOperatorReference.deploy(self.link, sender=owner)
        self.operator.setAuthorizedSenders([self.node], sender=owner)
        self.consumer = project.ChainlinkConsumerReference.deploy(
            self.link, self.operator, JOB_ID, FEE, sender=owner
        )
        self.link.grantMintRole(owner, sender=owner)
        self.link.mint(self.consumer, 1_000 * LINK, sender=owner)

    def request(self) -> tuple[int, Any]:
        """Sends a request; returns its gas and the Operator's OracleRequest event."""
        tx = self.consumer.requestVolumeData(sender=self.ctx.owner)
        (event,) = tx.decode_logs(self.operator.OracleRequest)
        return gas_used(tx), event

    def fulfill(self, event: Any, value: int, *, multiword: bool = False) -> int:
        """The node answers the request `event` with `value` through `fulfillOracleRequest`
        (or `fulfillOracleRequest2`); returns the fulfillment's gas."""
        request_id = bytes(event.requestId)
        args = (
            request_id,
            event.payment,
            event.callbackAddr,
            bytes(event.callbackFunctionId),
            event.cancelExpiration,
        )
        word = value.to_bytes(32, "big")
        if multiword:  # the data is the callback's arguments: (bytes32 requestId, uint256)
            call, data = self.operator.fulfillOracleRequest2, request_id + word
        else:  # the data is one word, passed with the request id
            call, data = self.operator.fulfillOracleRequest, word
        tx = call(*args, data, sender=self.node, gas=FULFILL_GAS_LIMIT)
        if int(self.consumer.volume()) != value:
            raise RuntimeError(f"the consumer recorded {self.consumer.volume()}, not {value}")
        return gas_used(tx)

    def round_trip(self, value: int, *, multiword: bool = False) -> RoundTrip:
        request, event = self.request()
        return RoundTrip(request, self.fulfill(event, value, multiword=multiword), value)


def measure(ctx: BenchContext) -> ChainlinkFigures:
    """Deploys the reference and measures its round trips on `ctx`'s chain."""
    ref = ChainlinkReference(ctx)
    first = ref.round_trip(1_234 * 10**18)
    fulfill2 = ref.round_trip(2_345 * 10**18, multiword=True).fulfill
    steady = ref.round_trip(3_456 * 10**18)
    return ChainlinkFigures(steady=steady, fulfill2=fulfill2, first=first)


# A job's life at m = 2 with a permit: the market paths bench/market_gas.py measures.
LIFECYCLE = [
    "postAcceptedJob with a permit (a quote; the client's first permit)",
    "submitResult",
    "settle, m = 2",
]
"""A job's life as the market is meant to be used: the provider quotes (accepts off chain),
the client posts the quoted job, the provider submits, the oracles settle."""
OPEN_LIFECYCLE = [
    "postJobWithPermit (the client's first permit)",
    "acceptJob",
    "submitResult",
    "settle, m = 2",
]
"""A job posted for any provider to take: one transaction more (the acceptance on chain)."""
TARGET, AIM = 1.25, 1.10


def lifecycle_table(market: dict[str, int], chainlink: ChainlinkFigures) -> Table:
    """A job's life (the LIFECYCLE paths of `market`, path -> gas, and the open market's
    OPEN_LIFECYCLE) beside Chainlink's round trip measured in the same run."""
    life = sum(market[name] for name in LIFECYCLE)
    open_life = sum(market[name] for name in OPEN_LIFECYCLE)
    trip = chainlink.steady

    def verdict(gas: int) -> str:
        if gas <= AIM * trip.total:
            return "met, and the aim"
        return "met" if gas <= TARGET * trip.total else "not met"

    table = Table(
        title="Compute market: a job's life beside Chainlink's request + fulfill (same run)",
        columns=["path", "gas", "/ Chainlink round trip", "target"],
    )
    for name in LIFECYCLE:
        table.add(f"market: {name}", f"{market[name]:,}", ratio(market[name], trip.total), "")
    table.add(
        "**market: a quoted job's life (m = 2, with a permit)**",
        f"**{life:,}**",
        f"**{ratio(life, trip.total)}**",
        f"<= {TARGET:.2f}x (aim {AIM:.2f}x): {verdict(life)}",
    )
    table.add(
        "market: an open job's life (post with a permit + acceptJob + submit + settle, m = 2)",
        f"{open_life:,}",
        ratio(open_life, trip.total),
        f"{verdict(open_life)} (one transaction more)",
    )
    table.add(
        "Chainlink: request (sendChainlinkRequest: LINK transferAndCall, Operator oracleRequest)",
        f"{trip.request:,}",
        ratio(trip.request, trip.total),
        "",
    )
    table.add(
        "Chainlink: fulfill (fulfillOracleRequest, the consumer called back)",
        f"{trip.fulfill:,}",
        ratio(trip.fulfill, trip.total),
        "",
    )
    table.add("**Chainlink: round trip**", f"**{trip.total:,}**", "1.00x", "")
    first, issue = chainlink.first, ISSUE_REQUEST + ISSUE_FULFILL
    multiword = trip.request + chainlink.fulfill2
    table.notes = [
        "Reference: Chainlink's `Operator` and `LinkToken` from npm `@chainlink/contracts` "
        "1.2.0 (compiled by solc 0.8.19, their pragma) and a `ChainlinkClient` consumer asking "
        "for one uint256 as Chainlink's Get > Uint256 example does, on this chain "
        "(contracts/reference/Chainlink*.sol). Steady state, as the market's paths: the Operator "
        "already holds LINK and the consumer has had an answer before. A quoted job's life: the "
        "client posts a job its provider accepted off chain (an EIP-712 acceptance checked on "
        "chain; the client's first permit) + submit + settle with two oracle signatures; an "
        "open job's life adds the provider's acceptJob transaction; each path as measured in "
        "the first table.",
        "",
        f"Issue 14 quotes {ISSUE_REQUEST:,} + {ISSUE_FULFILL:,} = {issue:,} "
        f"(measured here: {ratio(trip.total, issue)} of that). Fulfilling through "
        f"`fulfillOracleRequest2` (multi-word, as Chainlink's current job specs do) costs "
        f"{chainlink.fulfill2:,}: a round trip of {multiword:,}, the quoted job's life "
        f"{ratio(life, multiword)} of it. The consumer's first round trip: "
        f"{first.request:,} + {first.fulfill:,} = {first.total:,} (the Operator's first LINK, "
        "the consumer's value slot set from zero).",
    ]
    return table

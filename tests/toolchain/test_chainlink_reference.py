"""Issue 14's reference: Chainlink's Operator, LinkToken and a ChainlinkClient consumer
(contracts/reference/Chainlink*.sol) compile with solc 0.8.19 beside the project's 0.8.37, and
the request + fulfill round trip `make bench` measures works on the test chain."""

from __future__ import annotations

from typing import Any

import ape

from bench import chainlink_reference
from bench.common import BenchContext

REFERENCES = {
    "ChainlinkOperatorReference",
    "ChainlinkLinkTokenReference",
    "ChainlinkConsumerReference",
}


def compiled_with(project: Any) -> dict[str, str]:
    """Contract name -> the solc version that compiled it, from the project's manifest."""
    project.load_contracts()
    return {
        name: str(compiler.version).split("+")[0]
        for compiler in project.manifest.compilers or []
        for name in compiler.contractTypes or []
    }


def test_reference__compiled_by_solc_0_8_19__the_project_by_0_8_37(project: Any) -> None:
    versions = compiled_with(project)
    assert {versions.get(name) for name in REFERENCES} == {"0.8.19"}
    for name in ("NeuroToken", "ComputeMarket", "TokenSale", "ReferenceOZToken"):
        assert versions.get(name) == "0.8.37", (name, versions.get(name))


def test_round_trip__request_then_fulfill__the_consumer_gets_the_value(
    project: Any, chain: Any, owner: Any
) -> None:
    ref = chainlink_reference.ChainlinkReference(
        BenchContext(project=project, chain=chain, accounts=ape.accounts, owner=owner)
    )
    request_gas, event = ref.request()
    assert event.requester == ref.consumer.address
    assert event.callbackAddr == ref.consumer.address
    assert event.payment == chainlink_reference.FEE
    assert ref.link.balanceOf(ref.operator) == chainlink_reference.FEE

    value = 4_242 * 10**18
    fulfill_gas = ref.fulfill(event, value)
    assert ref.consumer.volume() == value
    # Answered once: the same answer again is refused (the commitment is gone).
    with ape.reverts():
        ref.fulfill(event, value)
    # Both transactions are of the size issue 14 quotes (132,170 and 46,973), give or take.
    assert 80_000 < request_gas < 200_000
    assert 30_000 < fulfill_gas < 100_000

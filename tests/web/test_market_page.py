"""The market page in Chromium, through wallets holding real keys on anvil (issue #11): a
client posts a job from the form, funding it with a permit signature in one transaction (the
spec travels in the job as a data: URI whose bytes hash to the spec hash, as the market's
workers check), follows it to its checked shards and sees it paid after the oracles settle;
the provider that did it withdraws its earnings from the page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neurotoken.chain import deployments
from neurotoken.jobs import keccak256, parse_spec
from neurotoken.jobs.data_uri import data_uri_bytes
from neurotoken.market.records import ape_reader
from neurotoken.units import NTK
from neurotoken.webapp import app_config
from tests.agent.conftest import Jobs
from tests.constants import MAX_UINT256, STAKE
from tests.helpers import deploy_market
from tests.web.conftest import DESKTOP, PHONE, screenshot

expect = pytest.importorskip("playwright.sync_api").expect

NETWORK = "ethereum-webmarket"


def test_client_posts_with_a_permit__sees_it_checked_and_paid__provider_withdraws(
    project: Any, chain: Any, owner: Any, token: Any, minter: Any, oracles: list[Any],
    client: Any, provider: Any, stranger: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    serve_app: Callable[[dict[str, Any]], str], open_page: Callable[..., Any],
) -> None:  # fmt: skip
    market = deploy_market(project, token, owner, oracles)
    token.mint(client, 1_000 * NTK, sender=minter)
    token.mint(provider, 10_000 * NTK, sender=minter)
    token.approve(market, MAX_UINT256, sender=provider)
    market.registerProvider(STAKE, "", sender=provider)
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    deployments.record(NETWORK, "NeuroToken", token.address)
    deployments.record(NETWORK, "ComputeMarket", market.address, block=chain.blocks.head.number)
    url = serve_app(app_config(NETWORK, chain.chain_id, str(chain.provider.uri))) + "#market"

    page, wallet = open_page(url, client)
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#account")).to_contain_text("on Local anvil")
    expect(page.locator("#jobs-empty")).to_be_visible()
    # 16 shards, k = 4, 80 NTK: the deterrent is 80 x (16 + 1 - 8) / 4 + 1 wei = 180 NTK + 1 wei
    expect(page.locator("#post-minimum")).to_contain_text("at least 180 NTK")
    expect(page.get_by_label("Provider's collateral (NTK)")).to_have_value("181")
    assert token.allowance(client, market) == 0  # nothing approved beforehand: the permit pays
    collateral = page.get_by_label("Provider's collateral (NTK)")
    collateral.fill("100")  # below the deterrent: refused in a sentence, before any signature
    page.get_by_role("button", name="Sign the payment and post").click()
    expect(page.locator("#message")).to_have_text(
        "The collateral must be at least 180 NTK for cheating to cost the provider money "
        "(100 NTK offered)."
    )
    assert wallet.sent == []
    collateral.fill("181")
    page.get_by_role("button", name="Sign the payment and post").click()
    expect(page.locator("#message")).to_have_text(
        "Job 1 posted: 80 NTK held in escrow until it is settled."
    )
    assert len(wallet.sent) == 1  # one transaction: the permit rode with the post
    assert token.balanceOf(market) == 80 * NTK + STAKE  # (job 2, below, adds its own 80)
    job = ape_reader(market).get(1)
    assert (job.client, job.payment_ntk, job.collateral_ntk) == (
        client.address,
        80 * NTK,
        181 * NTK,
    )
    posted = market.JobPosted.query("*", start_block=0)
    spec_bytes = data_uri_bytes(posted["event_arguments"].iloc[-1]["specURI"])
    assert keccak256(spec_bytes) == job.spec_hash  # the page's canonical JSON is the workers'
    assert parse_spec(spec_bytes).shard_count == 16
    expect(page.locator("#job-1")).to_contain_text("Posted")

    # the training workload: a second job (the permit's nonce moved on), a spec the workers parse
    page.get_by_label("Workload").select_option("classifier-training")
    page.get_by_role("button", name="Sign the payment and post").click()
    expect(page.locator("#message")).to_have_text(
        "Job 2 posted: 80 NTK held in escrow until it is settled."
    )
    posted = market.JobPosted.query("*", start_block=0)
    training_bytes = data_uri_bytes(posted["event_arguments"].iloc[-1]["specURI"])
    training = parse_spec(training_bytes)
    assert training.kind == "classifier-training" and training.shard_count == 16
    assert keccak256(training_bytes) == ape_reader(market).get(2).spec_hash

    # a provider takes it and commits a result; the page shows the shards the oracles check
    jobs = Jobs(market, chain, client, oracles, tmp_path)
    market.acceptJob(1, jobs.rec(1), sender=provider)
    market.submitResult(
        1, jobs.rec(1), b"\x11" * 32, 16, "http://farm.example/bundles", sender=provider
    )
    farm, _ = open_page(url, provider)
    farm.get_by_role("button", name="Connect wallet").click()
    expect(farm.locator("#provider-status")).to_have_text("Registered as a provider.")
    expect(farm.locator("#provider-jobs")).to_contain_text(
        "#1 (Submitted, 181 NTK locked, deliver by"
    )
    chain.mine(2)  # the seed block, then one more so views read its hash
    drawn = [int(i) for i in market.challengedShards(1, jobs.rec(1))]
    page.reload()
    expect(page.locator("#job-1")).to_contain_text("Submitted")
    expect(page.locator("#job-1")).to_contain_text(", ".join(map(str, drawn)))
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        screenshot(page, "market-job-submitted")

    jobs.settle(1, True, sender=stranger)
    page.reload()
    expect(page.locator("#job-1")).to_contain_text("Paid")
    expect(page.locator("#job-1")).to_contain_text("accepted: the provider was paid 78 NTK")
    expect(page.locator("#job-1")).to_contain_text(", ".join(map(str, drawn)))  # still shown

    farm.reload()
    expect(farm.locator("#provider-jobs")).to_have_text("none")
    expect(farm.locator("#provider-earned")).to_have_text("78 NTK")
    before = token.balanceOf(provider)
    farm.get_by_role("button", name="Withdraw earnings").click()
    expect(farm.locator("#message")).to_have_text("Withdrawn: your earnings are in your wallet.")
    assert token.balanceOf(provider) == before + 78 * NTK
    expect(farm.get_by_role("button", name="Withdraw earnings")).to_be_hidden()
    for viewport in (PHONE, DESKTOP):
        farm.set_viewport_size(viewport)
        screenshot(farm, "market-provider-withdrawn")

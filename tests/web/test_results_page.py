"""A client sees its delivered result in the browser (issue #11): a job posted from the page
is taken by a real provider agent (computed, published, submitted) and settled by two oracles;
the page signs a read token in the wallet, fetches the job's first shard from the provider's
bundle server (CORS; the server admits only the job's client and oracles), checks it against
the manifest and draws its images with their labels, the same labels Python decodes; without a
token the server's refusal reaches the page (CORS) with nothing of the result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neurotoken.chain import deployments
from neurotoken.proofs import LocalStore
from neurotoken.provider import account as acct
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.readers import agent_gate
from neurotoken.provider.server import BundleServer, make_app
from neurotoken.webapp import app_config
from neurotoken.workloads.shelf_job import decode_shelf_shard
from tests.agent.conftest import Jobs
from tests.constants import STAKE
from tests.web.conftest import DESKTOP, PHONE, screenshot

expect = pytest.importorskip("playwright.sync_api").expect

NETWORK = "ethereum-webresults"


def test_client_sees_its_delivered_images_with_labels__no_token_no_bytes(
    chain: Any, token: Any, market: Any, farm: MarketClient, jobs: Jobs,
    make_agent: Callable[..., Any], client: Any, stranger: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, serve_app: Callable[[dict[str, Any]], str],
    open_page: Callable[..., Any],
) -> None:  # fmt: skip
    acct.register(farm, STAKE)
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    deployments.record(NETWORK, "NeuroToken", token.address)
    deployments.record(NETWORK, "ComputeMarket", market.address)
    url = serve_app(app_config(NETWORK, chain.chain_id, str(chain.provider.uri))) + "#market"

    page, _ = open_page(url, client)
    page.get_by_role("button", name="Connect wallet").click()
    page.get_by_label("Shards", exact=True).fill("4")
    page.get_by_label("Shards the oracles check (k)").fill("2")
    page.get_by_role("button", name="Sign the payment and post").click()
    expect(page.locator("#message")).to_contain_text("Job 1 posted")

    store = LocalStore(tmp_path / "bundles")
    with BundleServer(make_app(store, agent_gate(tmp_path / "state", farm))) as server:
        report = make_agent(bundle_uri=server.url).step()
        assert report.submitted == [1]
        jobs.settle(1, True, sender=stranger)
        page.reload()
        expect(page.locator("#job-1")).to_contain_text("Paid")
        page.get_by_role("button", name="See images of job 1").click()
        expect(page.locator("#message")).to_contain_text("checked against its root")
        expect(page.locator("#result-images canvas")).to_have_count(2)
        root = jobs.job(1).result_root
        first = store.object(bytes.fromhex(_manifest_leaf(store, root)), 1 << 30)
        names = [
            label["name"]
            for image in decode_shelf_shard(first).images
            for label in image.labels
            if label["bbox"] is not None
        ]
        expect(page.locator("#result-labels")).to_have_text("Products: " + ", ".join(names))
        for viewport in (PHONE, DESKTOP):
            page.set_viewport_size(viewport)
            screenshot(page, "market-result-images")

        # from the page's origin, without a token: a refusal the page can read (CORS on
        # refusals too), and not a byte of the result
        manifest = f"{server.url}/bundles/0x{root.hex()}/manifest"
        status = page.evaluate("url => fetch(url).then(r => r.status)", manifest)
        assert status == 401


def _manifest_leaf(store: LocalStore, root: bytes) -> str:
    import json

    from neurotoken.proofs.store import manifest_path

    manifest = json.loads((store.root_dir / manifest_path(root)).read_bytes())
    return str(manifest["leaves"][0]).removeprefix("0x")

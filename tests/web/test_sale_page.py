"""The sale page in Chromium, through a wallet holding a real key on anvil (issue #11): a
presale buyer connects, buys with the proof the page finds in the published allow-list, sees
the progress move, is told in a sentence why a buy above the maximum cannot go through (and
nothing is sent), and claims after the sale succeeds; in a sale that misses its soft cap every
buyer takes the ETH back; a wallet on another network is switched with one button."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from neurotoken.chain import deployments
from neurotoken.sale.allowlist import Allowlist
from neurotoken.sale.deploy import SaleDeployment, deploy_sale
from neurotoken.sale.terms import Stage
from neurotoken.units import NTK
from neurotoken.webapp import app_config
from tests.constants import ETH, HOUR
from tests.sale.conftest import FILLER, default_terms
from tests.web.conftest import DESKTOP, PHONE, screenshot

expect = pytest.importorskip("playwright.sync_api").expect

NETWORK = "ethereum-webtest"


@pytest.fixture
def allowlist(alice: Any, bob: Any) -> Allowlist:
    return Allowlist.build([alice.address, bob.address, *FILLER])


@pytest.fixture
def launch(
    project: Any, chain: Any, owner: Any, allowlist: Allowlist, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, serve_app: Callable[[dict[str, Any]], str],
) -> Callable[..., tuple[SaleDeployment, str]]:  # fmt: skip
    """launch(**terms) -> (deployment, url): a sale deployed and recorded as a deploy would
    (deployments file, published allow-list), and the app served with that network's config."""

    def _launch(**overrides: Any) -> tuple[SaleDeployment, str]:
        deployed = deploy_sale(project, owner, default_terms(chain, allowlist, **overrides))
        monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
        tree = tmp_path / "allowlist.json"
        allowlist.write(tree)
        deployments.record(NETWORK, "NeuroToken", deployed.token.address)
        deployments.record(NETWORK, "TokenSale", deployed.sale.address, allowlist=str(tree))
        config = app_config(NETWORK, chain.chain_id, str(chain.provider.uri))
        return deployed, serve_app(config)

    return _launch


def warp(chain: Any, deployed: SaleDeployment, stage: Stage, offset: int = HOUR) -> None:
    chain.mine(timestamp=deployed.terms.stage_start(stage) + offset)


def connect(page: Any) -> None:
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#account")).to_contain_text("on Local anvil")


def test_presale_buyer__buys_with_a_proof__sees_progress__is_told_why_above_max__claims(
    launch: Callable[..., tuple[SaleDeployment, str]], open_page: Callable[..., Any],
    chain: Any, alice: Any, bob: Any, carol: Any,
) -> None:  # fmt: skip
    deployed, url = launch()
    sale = deployed.sale
    warp(chain, deployed, Stage.PRESALE)
    for viewport in (PHONE, DESKTOP):
        page, _ = open_page(url, alice, viewport=viewport)
        expect(page.locator("#sale-stage")).to_have_text("Presale")
        screenshot(page, "sale-before-connecting")
        page.close()

    page, wallet = open_page(url, alice)
    connect(page)
    expect(page.locator("#sale-bonus")).to_have_text("10%")
    expect(page.locator("#sale-allowlisted")).to_have_text("On the presale allow-list.")
    expect(page.locator("#sale-next")).to_contain_text("ICO week 1 starts")
    page.get_by_label("ETH to send").fill("1.5")
    # the page's quote is the contract's own
    tokens, _ = sale.quote(int(Stage.PRESALE), 3 * ETH // 2)
    assert tokens == 1_650 * NTK
    expect(page.locator("#buy-quote")).to_have_text("You get 1,650 NTK.")
    page.get_by_role("button", name="Buy").click()
    expect(page.locator("#message")).to_have_text(
        "Bought: 1,650 NTK are yours to claim if the sale succeeds."
    )
    expect(page.locator("#sale-raised")).to_have_text("1.5 ETH")
    expect(page.locator("#sale-sold")).to_have_text("1,650 NTK")
    expect(page.locator("#sale-paid")).to_have_text("1.5 ETH")
    assert sale.contributionOf(alice.address) == (3 * ETH // 2, 1_650 * NTK)
    assert len(wallet.sent) == 1

    # above the maximum: a sentence, and the wallet is never asked to send
    page.get_by_label("ETH to send").fill("49")
    page.get_by_role("button", name="Buy").click()
    expect(page.locator("#message")).to_have_text(
        "That would bring your contributions to 50.5 ETH, above the most one buyer may pay "
        "(50 ETH). Send less."
    )
    assert len(wallet.sent) == 1
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        screenshot(page, "sale-presale-bought")

    # someone off the list is told so before any wallet prompt
    other, other_wallet = open_page(url, carol)
    connect(other)
    expect(other.locator("#sale-allowlisted")).to_have_text("Not on the presale allow-list.")
    other.get_by_label("ETH to send").fill("1")
    other.get_by_role("button", name="Buy").click()
    expect(other.locator("#message")).to_contain_text("not on the presale allow-list")
    assert other_wallet.sent == []

    # the sale succeeds: bob buys past the soft cap in week 1, the sale is finalized
    warp(chain, deployed, Stage.ICO_WEEK1)
    sale.buy([], sender=bob, value=25 * ETH)
    chain.mine(timestamp=deployed.terms.ends_at + 1)
    sale.finalize(sender=bob)
    page.reload()
    expect(page.locator("#sale-state")).to_have_text("Succeeded")
    page.get_by_role("button", name="Claim my NTK").click()
    expect(page.locator("#message")).to_have_text("Claimed: the NTK are in your wallet.")
    assert deployed.token.balanceOf(alice.address) == 1_650 * NTK
    expect(page.get_by_role("button", name="Claim my NTK")).to_be_hidden()
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        screenshot(page, "sale-claimed")


def test_failed_sale__every_buyer_refunds_from_the_page(
    launch: Callable[..., tuple[SaleDeployment, str]], open_page: Callable[..., Any],
    chain: Any, alice: Any, bob: Any,
) -> None:  # fmt: skip
    deployed, url = launch()
    sale = deployed.sale
    warp(chain, deployed, Stage.ICO_WEEK1)
    pages = []
    for buyer, amount in ((alice, "2"), (bob, "0.5")):
        page, _ = open_page(url, buyer)
        connect(page)
        page.get_by_label("ETH to send").fill(amount)
        page.get_by_role("button", name="Buy").click()
        expect(page.locator("#message")).to_contain_text("Bought:")
        pages.append((buyer, page))
    chain.mine(timestamp=deployed.terms.ends_at + 1)
    sale.finalize(sender=alice)  # below the 20 ETH soft cap: failed
    for buyer, page in pages:
        before = chain.provider.get_balance(buyer.address)
        page.reload()
        expect(page.locator("#sale-state")).to_have_text("Failed")
        page.get_by_role("button", name="Refund my ETH").click()
        expect(page.locator("#message")).to_have_text("Refunded: the ETH is back in your wallet.")
        assert sale.contributionOf(buyer.address) == (0, 0)
        assert chain.provider.get_balance(buyer.address) > before
    screenshot(pages[0][1], "sale-refunded")


def test_wrong_network__one_button_switches__a_refusal_is_a_sentence(
    launch: Callable[..., tuple[SaleDeployment, str]], open_page: Callable[..., Any],
    chain: Any, alice: Any,
) -> None:  # fmt: skip
    deployed, url = launch()
    warp(chain, deployed, Stage.ICO_WEEK1)
    page, wallet = open_page(url, alice, chain_id=1)
    connect_button = page.get_by_role("button", name="Connect wallet")
    connect_button.click()
    expect(page.locator("#network-banner")).to_be_visible()
    expect(page.locator("#network-text")).to_contain_text("this app works on Local anvil")
    screenshot(page, "sale-wrong-network")
    page.get_by_role("button", name="Switch network").click()
    expect(page.locator("#network-banner")).to_be_hidden()
    assert wallet.chain_id == chain.chain_id
    wallet.refuse_next = True
    page.get_by_label("ETH to send").fill("1")
    page.get_by_role("button", name="Buy").click()
    expect(page.locator("#message")).to_have_text(
        "You declined the request in your wallet; nothing was sent."
    )
    assert wallet.sent == []


def tab_to(page: Any, text: str, presses: int = 20, key: str = "Tab") -> None:
    """Presses Tab (or `key`, e.g. Shift+Tab) until the focused element is the control named
    `text` (its text or its label); fails if it is never reached."""
    for _ in range(presses):
        page.keyboard.press(key)
        name = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.labels?.[0]?.textContent ?? e.textContent ?? '').trim(); }"
        )
        if name == text:
            return
    raise AssertionError(f"{text!r} is not reachable with the Tab key")


def test_keyboard_only__connect_buy_and_switch_views(
    launch: Callable[..., tuple[SaleDeployment, str]], open_page: Callable[..., Any],
    chain: Any, alice: Any,
) -> None:  # fmt: skip
    deployed, url = launch()
    warp(chain, deployed, Stage.ICO_WEEK1)
    page, wallet = open_page(url, alice)
    expect(page.get_by_role("button", name="Connect wallet")).to_be_enabled()
    tab_to(page, "Connect wallet")
    page.keyboard.press("Enter")
    expect(page.locator("#account")).to_contain_text("on Local anvil")
    tab_to(page, "ETH to send")
    page.keyboard.type("0.5")
    tab_to(page, "Buy")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Bought:")
    assert len(wallet.sent) == 1
    tab_to(page, "Compute market", key="Shift+Tab")  # back up to the views' links
    page.keyboard.press("Enter")
    expect(page.locator("#market-view")).to_be_visible()
    expect(page.locator("#sale-view")).to_be_hidden()

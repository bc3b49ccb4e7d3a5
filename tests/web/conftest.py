"""Browser-test fixtures: the built app served with a network's config, Debian's Chromium
driven by Playwright (`executable_path=shutil.which("chromium")`; no browser is downloaded),
and a wallet backed by a real key on the tests' anvil (`tests/web/wallet.py`).

Screenshots of each view at phone and desktop width go to `.cache/web-screenshots/`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from neurotoken.webapp import WEB_DIR, AppServer

# The provider agent's fixtures (a market, the agent's chain client, agents, jobs), for the
# page that shows a delivered result.
from tests.agent.conftest import (  # noqa: F401
    abi_manifest,
    farm,
    farm_key,
    jobs,
    make_agent,
    market,
    rpc_url,
)
from tests.web.wallet import BrowserWallet

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".cache" / "web-screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _stale(dist: Path) -> bool:
    built = dist / "index.html"
    if not built.is_file():
        return True
    sources = [WEB_DIR / "index.html", *(WEB_DIR / "src").rglob("*")]
    return max(p.stat().st_mtime for p in sources if p.is_file()) > built.stat().st_mtime


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """web/dist, built if missing or older than its sources (`make setup` builds it too)."""
    dist = WEB_DIR / "dist"
    if _stale(dist):
        if not (WEB_DIR / "node_modules").is_dir():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB_DIR, check=True)
        subprocess.run(["npm", "run", "build"], cwd=WEB_DIR, check=True, capture_output=True)
    return dist


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Debian's chromium is not installed (`apt-get install chromium`; .ci/run does it)"
        )
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def serve_app(web_dist: Path) -> Iterator[Callable[[dict[str, Any]], str]]:
    """serve_app(config) -> the URL of the app served with that config.json."""
    servers: list[AppServer] = []

    def _serve(config: dict[str, Any]) -> str:
        server = AppServer(web_dist, config).start()
        servers.append(server)
        return server.url

    yield _serve
    for server in servers:
        server.stop()


@pytest.fixture
def open_page(browser: Any, chain: Any) -> Iterator[Callable[..., tuple[Any, BrowserWallet]]]:
    """open_page(url, account, chain_id=None, width=DESKTOP) -> (page, wallet): a fresh
    browser context whose injected wallet holds `account`'s key."""
    contexts: list[Any] = []

    def _open(
        url: str, account: Any, chain_id: int | None = None, viewport: dict[str, int] = DESKTOP
    ) -> tuple[Any, BrowserWallet]:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        wallet = BrowserWallet(
            str(chain.provider.uri), account.private_key, chain_id or chain.chain_id
        )
        wallet.install(page)
        page.goto(url)
        return page, wallet

    yield _open
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Saves the whole page as .cache/web-screenshots/<name>-<width>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}-{page.viewport_size['width']}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

"""The app's config.json and its static server (no browser): what is recorded for a network,
the ABIs, the published allow-list, and clear errors for what is missing or damaged."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurotoken.chain import deployments
from neurotoken.errors import ConfigError
from neurotoken.sale.allowlist import Allowlist
from neurotoken.webapp import AppServer, app_config
from neurotoken.webapp.__main__ import main

SALE = "0x00000000000000000000000000000000000000a1"
TOKEN = "0x00000000000000000000000000000000000000a2"


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project: object) -> Path:
    project.load_contracts()  # type: ignore[attr-defined]  # the ABIs come from ape's build
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    tree = tmp_path / "allowlist.json"
    Allowlist.build([f"0x{i:040x}" for i in range(1, 5)]).write(tree)
    deployments.record("ethereum-x", "NeuroToken", TOKEN)
    deployments.record("ethereum-x", "TokenSale", SALE, allowlist=str(tree))
    return tree


def test_config__addresses_abis_and_the_allowlist_of_the_network(recorded: Path) -> None:
    config = app_config("ethereum-x", 31337, "http://127.0.0.1:8545")
    assert (config["chainId"], config["chainName"]) == (31337, "Local anvil")
    assert config["contracts"]["TokenSale"]["address"] == SALE
    assert {"buy", "claim", "refund"} <= {
        item.get("name") for item in config["contracts"]["TokenSale"]["abi"]
    }
    assert "ComputeMarket" not in config["contracts"]  # not recorded: not offered
    assert config["allowlist"] == json.loads(recorded.read_text())


def test_config__nothing_recorded_or_a_damaged_allowlist__one_clear_error(recorded: Path) -> None:
    with pytest.raises(ConfigError, match="nothing is recorded for network 'ethereum-y'"):
        app_config("ethereum-y", 1)
    recorded.write_text("{not json")
    with pytest.raises(ConfigError, match=r"allow-list .* cannot be read"):
        app_config("ethereum-x", 1)
    recorded.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not a StandardMerkleTree JSON"):
        app_config("ethereum-x", 1)


def test_server__serves_the_app_and_its_config(recorded: Path, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>x</title>")
    server = AppServer(dist, {"chainId": 5}).start()
    try:
        with urllib.request.urlopen(server.url + "config.json", timeout=10) as reply:
            assert json.loads(reply.read()) == {"chainId": 5}
            assert reply.headers["Cache-Control"] == "no-store"
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert b"<title>x</title>" in reply.read()
    finally:
        server.stop()
    with pytest.raises(ConfigError, match="not built"):
        AppServer(tmp_path / "nothing", {})


def test_cli__config_written__mistakes_one_line(recorded: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "site"
    result = runner.invoke(
        main, ["config", "--network", "ethereum-x", "--chain-id", "7", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["chainId"] == 7
    result = runner.invoke(main, ["config", "--network", "ethereum-x", "--out", str(out)])
    assert result.exit_code == 2 and "give --rpc-url" in result.output
    result = runner.invoke(main, ["serve", "--network", "nowhere", "--chain-id", "1"])
    assert result.exit_code == 1 and "nothing is recorded for network 'nowhere'" in result.output

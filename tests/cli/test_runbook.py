"""The run book, as a stranger pastes it (issue 15): README's commands, one after another,
as real processes in a clean environment (no make, nothing exported but what the README
says to export), against one anvil node standing in for Sepolia.

The economy is the seed's: NTK bought in the sale is what the client escrows for a job and
what the provider stakes. Keystore accounts sign unattended (their passphrases in
APE_ACCOUNTS_<alias>_PASSPHRASE), so no command prompts.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_typing import HexStr

from devchain.localnet import Anvil, anvil_keys
from tests.cli.clean import ROOT, run_ok

ALIASES = ("deployer", "client", "provider")


class RunBook:
    def __init__(self, home: Path, anvil: Anvil) -> None:
        self.home = home
        self.network = anvil.url
        self.anvil = anvil
        keys = anvil_keys(8)
        self.keys = dict(zip(ALIASES, (keys[0], keys[3], keys[4]), strict=True))
        self.address = {a: Account.from_key(k).address for a, k in self.keys.items()}
        self.oracles = [Account.from_key(k).address for k in keys[5:8]]
        accounts = home / "ape" / "accounts"
        accounts.mkdir(parents=True)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "APE_DATA_FOLDER": str(home / "ape"),
            "NEUROTOKEN_DEPLOYMENTS_DIR": str(home / "deployments"),
        }
        for alias, key in self.keys.items():
            passphrase = f"{alias}-passphrase"
            document = Account.encrypt(HexStr(key), passphrase, kdf="pbkdf2", iterations=1024)
            (accounts / f"{alias}.json").write_text(json.dumps(document))
            self.env[f"APE_ACCOUNTS_{alias}_PASSPHRASE"] = passphrase

    def run(self, *command: str) -> str:
        return run_ok(command[0], *command[1:], env=self.env)

    def ape(self, *args: str, account: str | None = None, network: bool = True) -> str:
        extra = ["--account", account] if account else []
        extra += ["--network", self.network] if network else []
        return self.run("ape", "run", *args, *extra)

    def file(self, name: str) -> str:
        return str(self.home / name)

    def warp(self, seconds: int) -> None:
        self.anvil.rpc("evm_increaseTime", seconds)
        self.anvil.rpc("evm_mine")


@pytest.fixture
def book(tmp_path: Path) -> Any:
    anvil = Anvil(log_path=tmp_path / "anvil.log").start()
    try:
        yield RunBook(tmp_path, anvil)
    finally:
        anvil.stop()


def sale_config(book: RunBook) -> Path:
    """config/sale.toml with a small sale that the client can sell out alone, opening a
    minute after it is deployed, and the allocation wallets named (a live network refuses
    empty ones): the provider is the liquidity wallet, so it gets NTK to stake."""
    text = (ROOT / "config" / "sale.toml").read_text()
    for old, new in {
        "offered_ntk = 60_000_000": "offered_ntk = 1_000",
        'soft_cap_eth = "5000"': 'soft_cap_eth = "0.5"',
        'max_contribution_eth = "5000"': 'max_contribution_eth = "5"',
        "start_delay_seconds = 3600": "start_delay_seconds = 60",
    }.items():
        assert old in text
        text = text.replace(old, new)
    wallets = {
        "treasury": book.address["deployer"],
        "liquidity": book.address["provider"],
        "partners": book.address["deployer"],
        "researchers": book.address["deployer"],
        "team_beneficiary": book.address["deployer"],
    }
    for name, address in wallets.items():
        text = re.sub(rf'(?m)^{name} = ""', f'{name} = "{address}"', text)
    path = book.home / "my-sale.toml"
    path.write_text(text)
    return path


def test_readme_run_book__sale_then_market__one_economy_no_prompt(book: RunBook) -> None:
    # -- the sale (README: Running on a testnet)
    (book.home / "presale.csv").write_text(f"address\n{book.address['client']}\n")
    book.ape(
        "sale",
        "allowlist",
        book.file("presale.csv"),
        "--out",
        book.file("allowlist.json"),
        "--proofs",
        book.file("proofs.json"),
        network=False,
    )
    config = sale_config(book)
    book.ape(
        "sale",
        "deploy",
        "--config",
        str(config),
        "--allowlist",
        book.file("allowlist.json"),
        "--yes",
        account="deployer",
    )
    assert "stage         not started" in book.ape("sale", "status")
    book.warp(61)
    bought = book.ape("sale", "buy", "1", "--yes", account="client")
    assert "Bought 1,000 NTK" in bought  # sold out (the presale bonus passes the cap)
    book.ape("sale", "finalize", "--yes", account="provider")  # anyone may
    assert "Delivered 1,000 NTK" in book.ape("sale", "claim", account="client")
    # -- the market, paid in the sale's NTK
    oracles = [arg for address in book.oracles for arg in ("--oracle", address)]
    book.ape("market", "deploy", *oracles, "--threshold", "2", "--yes", account="deployer")
    book.ape(
        "market",
        "provider",
        "register",
        "100",
        "--metadata",
        "https://farm.example/offer",
        "--approve",
        account="provider",
    )
    spec = json.loads(
        book.run(
            "python",
            "-m",
            "neurotoken.client",
            "spec",
            "new",
            "shelf",
            "--shards",
            "16",
            "--challenges",
            "8",
            "--out",
            book.file("spec.json"),
        )
    )
    assert (book.home / "spec.json").is_file()
    assert spec["problems"] == []
    posted = book.ape(
        "market",
        "post",
        "--spec-hash",
        spec["hash"],
        "--spec-uri",
        (book.home / "spec.json").as_uri(),
        "--payment",
        "100",
        "--collateral",
        "min",
        "--shards",
        "16",
        "--challenges",
        "8",
        "--permit",
        account="client",
    )
    assert "posted job 1: 100 NTK escrowed" in posted
    status = book.ape("market", "status", "1")
    assert "job 1: Posted" in status and re.search(r"accept by   \d{4}-\d\d-\d\d .* UTC", status)
    assert "accepted job 1; deliver by" in book.ape("market", "accept", "1", account="provider")
    recorded = json.loads((book.home / "deployments" / "ethereum-custom.json").read_text())
    assert {"NeuroToken", "TokenSale", "TeamVestingWallet", "ComputeMarket"} <= set(recorded)
    # -- a quoted job (README: Posting by quote): the request for the provider, its acceptance
    written = book.ape(
        "market",
        "post",
        "--spec-hash",
        spec["hash"],
        "--spec-uri",
        (book.home / "spec.json").as_uri(),
        "--payment",
        "100",
        "--collateral",
        "min",
        "--shards",
        "16",
        "--challenges",
        "8",
        "--provider",
        book.address["provider"],
        "--request-out",
        book.file("request.json"),
        account="client",
    )
    assert f"for {book.address['provider']} to quote (nothing sent)" in written
    quoted = run_ok(
        "python",
        "-m",
        "neurotoken.provider",
        "agent",
        "quote",
        book.file("request.json"),
        "--state",
        book.file("provider-state"),
        "--min-price-per-shard",
        "0.5",
        "--out",
        book.file("quote.json"),
        env={
            **book.env,
            "NEUROTOKEN_RPC_URL": book.network,
            "NEUROTOKEN_MARKET": recorded["ComputeMarket"]["address"],
            "NEUROTOKEN_PROVIDER_KEYSTORE": "provider",
            "NEUROTOKEN_PROVIDER_PASSWORD": "provider-passphrase",
        },
    )
    assert f"quote written to {book.file('quote.json')}" in quoted
    posted = book.ape(
        "market",
        "post",
        "--request",
        book.file("request.json"),
        "--acceptance",
        book.file("quote.json"),
        "--permit",
        account="client",
    )
    assert f"posted job 2, already accepted by {book.address['provider']}" in posted
    status = book.ape("market", "status", "2")
    assert "job 2: Accepted" in status and "next: the provider must submit a result" in status

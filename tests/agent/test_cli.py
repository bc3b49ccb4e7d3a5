"""Keystores and the `python -m neurotoken.provider agent` command line, driven in-process
against the same anvil node."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.signers.local import LocalAccount

from neurotoken.chain.keystore import load_account, write_keystore
from neurotoken.errors import KeystoreError
from neurotoken.market.states import JobState
from neurotoken.proofs.access import sign_token
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.cli import main
from neurotoken.provider.sending import TxSettings
from tests.agent.conftest import PASSWORD_ENV, Jobs
from tests.constants import AGENT_PAYMENT, AGENT_SHARDS, FEE_BPS


def test_load_account__decrypts_with_the_password_from_the_named_variable(
    keystore: Path, farm_key: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "correct horse")
    assert load_account(str(keystore), PASSWORD_ENV).address == farm_key.address


def test_load_account__wrong_password__is_refused_without_echoing_secrets(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "battery staple")
    with pytest.raises(KeystoreError) as caught:
        load_account(str(keystore), PASSWORD_ENV)
    assert str(caught.value) == f"wrong password for {keystore} (from ${PASSWORD_ENV})"
    assert "battery" not in str(caught.value)


def test_load_account__password_variable_unset__says_which(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(KeystoreError, match=rf"read from \${PASSWORD_ENV}, which is not set"):
        load_account(str(keystore), PASSWORD_ENV)


def test_load_account__ape_alias__is_found_in_the_ape_data_folder(
    tmp_path: Path, farm_key: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_keystore(tmp_path / "ape" / "accounts" / "farm.json", farm_key.key, "pw", iterations=2)
    monkeypatch.setenv("APE_DATA_FOLDER", str(tmp_path / "ape"))
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    assert load_account("farm", PASSWORD_ENV).address == farm_key.address
    with pytest.raises(KeystoreError, match=r"no keystore at .*/ape/accounts/other\.json"):
        load_account("other", PASSWORD_ENV)


def test_load_account__not_a_keystore__is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"private_key": "0x" + "11" * 32}))
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    with pytest.raises(KeystoreError, match="not an encrypted keystore"):
        load_account(str(path), PASSWORD_ENV)


def test_load_account__stated_address_differs__is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_keystore(tmp_path / "k.json", Account.create().key, "pw", iterations=2)
    document = json.loads(path.read_text())
    document["address"] = "22" * 20
    path.write_text(json.dumps(document))
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    with pytest.raises(KeystoreError, match="not its stated address"):
        load_account(str(path), PASSWORD_ENV)


# ---------------------------------------------------------------------- the CLI


def test_cli__register_status_run_and_earnings(cli: Any, jobs: Jobs, tmp_path: Path) -> None:
    result = cli("register", "--stake", "1000", "--metadata-uri", "https://farm.example")
    assert result.exit_code == 0, result.output
    assert "registered 0x" in result.output and "with 1,000 NTK stake" in result.output

    result = cli("status")
    assert result.exit_code == 0 and "free stake     1,000 NTK" in result.output

    job_id = jobs.post()
    work = ["--state", str(tmp_path / "st"), "--store", str(tmp_path / "b"), "--confirmations", "0"]
    result = cli("jobs", *work, "--min-price-per-shard", "10")
    assert result.output.strip() == (
        f"job {job_id}: refuse (PRICE_TOO_LOW: 9.75 NTK per shard after the 2.5% fee "
        "< minimum 10 NTK)"
    )
    result = cli("run", *work, "--once", "--no-serve", "--quiet", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert f"job {job_id}: accepted - 8 shards for 80.00 NTK" in result.output
    assert f"job {job_id}: result submitted, root 0x" in result.output

    jobs.settle(job_id, True, sender=jobs.client)
    result = cli("earnings", "--json")
    report = json.loads(result.output)
    fee = AGENT_PAYMENT * FEE_BPS // 10_000
    assert (report["gross_ntk"], report["fees_ntk"], report["net_ntk"]) == (
        AGENT_PAYMENT, fee, AGENT_PAYMENT - fee,
    )  # fmt: skip
    assert [j["outcome"] for j in report["jobs"]] == ["paid"]
    result = cli("withdraw-earnings")
    assert result.exit_code == 0 and "withdrew 78 NTK of earnings" in result.output


def test_cli_jobs__sends_and_writes_nothing(cli: Any, jobs: Jobs, tmp_path: Path) -> None:
    """`agent jobs` only looks: no state database, spec cache or bundle folder appears (it
    reads an existing state, into memory)."""
    assert cli("register", "--stake", "1000").exit_code == 0
    job_id = jobs.post()
    state, store = tmp_path / "st", tmp_path / "b"
    work = ["--state", str(state), "--store", str(store), "--confirmations", "0"]
    result = cli("jobs", *work)
    assert result.exit_code == 0 and f"job {job_id}: accept" in result.output, result.output
    assert not state.exists() and not store.exists()
    assert cli("run", *work, "--once", "--no-serve", "--quiet", "--workers", "1").exit_code == 0

    def files() -> dict[Path, int]:
        # SQLite's own -wal/-shm files come and go with any reader: not data
        return {
            p: p.stat().st_mtime_ns
            for p in state.rglob("*")
            if not p.name.endswith(("-wal", "-shm"))
        }

    before = files()
    assert cli("jobs", *work).exit_code == 0
    assert files() == before


def test_cli_run__serve_port_in_use__one_line(cli: Any, tmp_path: Path) -> None:
    assert cli("register", "--stake", "1000").exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        work = ["--state", str(tmp_path / "st"), "--store", str(tmp_path / "b")]
        result = cli("run", *work, "--once", "--serve-port", str(port), "--quiet")
    assert result.exit_code == 1
    assert f"cannot serve bundles on 127.0.0.1:{port}" in result.output
    assert "--serve-port" in result.output and "Traceback" not in result.output


def test_cli__mistakes__end_with_one_clear_line(
    cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = cli("run", "--once", "--no-serve", "--state", str(tmp_path / "s"))
    assert result.exit_code == 1
    assert result.output.strip().endswith("agent register --stake AMOUNT` first")

    result = cli("register", "--stake", "-5")
    assert result.exit_code == 2 and "not an NTK amount" in result.output

    result = cli("register", "--stake", "50000")
    assert result.exit_code == 1 and "holds 10,000 NTK, 50,000 NTK needed" in result.output

    result = cli("--market", "0x000000000000000000000000000000000000dEaD", "status")
    assert (
        result.exit_code == 1
        and "no contract at 0x000000000000000000000000000000000000dEaD" in (result.output)
    )

    monkeypatch.delenv(PASSWORD_ENV)
    result = cli("status")
    assert result.exit_code == 1 and f"${PASSWORD_ENV}, which is not set" in result.output

    monkeypatch.delenv("NEUROTOKEN_MARKET")
    monkeypatch.setenv("NEUROTOKEN_DEPLOYMENTS_DIR", str(tmp_path / "none"))
    result = cli("earnings", "--provider", "0x" + "33" * 20)
    assert result.exit_code == 1 and "No ComputeMarket recorded for network 'ethereum-local'" in (
        result.output
    )


def test_cli__transaction_settings__reach_the_client_and_are_checked(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[MarketClient] = []
    connect = MarketClient.connect

    def spy(*args: Any, **kwargs: Any) -> MarketClient:
        made.append(connect(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(MarketClient, "connect", spy)
    result = cli("status")
    assert result.exit_code == 0, result.output
    assert made[-1].tx_settings == TxSettings(180.0, 3, 25, 500.0)

    monkeypatch.setenv("NEUROTOKEN_MAX_FEE_GWEI", "0")
    args = ["--receipt-timeout", "90", "--stuck-after-blocks", "5", "--fee-bump-pct", "30"]
    result = cli(*args, "status")
    assert result.exit_code == 0, result.output
    assert made[-1].tx_settings == TxSettings(90.0, 5, 30, None)

    result = cli("--fee-bump-pct", "5", "status")
    assert result.exit_code == 2 and "10 at least" in result.output


def test_cli_run__as_a_process__serves_submits_and_stops_on_sigterm(
    cli: Any, jobs: Jobs, tmp_path: Path, farm_key: LocalAccount, market: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    assert cli("register", "--stake", "1000").exit_code == 0
    job_id = jobs.post()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "neurotoken.provider", "agent", "--password-env", PASSWORD_ENV,
        "run", "--state", str(tmp_path / "st"), "--store", str(tmp_path / "b"),
        "--confirmations", "0", "--serve-port", str(port), "--poll", "0.3", "--quiet",
        "--workers", "1",
    ]  # fmt: skip
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while jobs.job(job_id).state != JobState.SUBMITTED and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.3)
            root = jobs.job(job_id).result_root
            url = f"http://127.0.0.1:{port}/bundles/0x{root.hex()}/manifest"
            with pytest.raises(urllib.error.HTTPError) as refused:  # no token: nothing
                urllib.request.urlopen(url, timeout=10)
            assert refused.value.code == 401
            client_key = jobs.client.private_key
            token = sign_token(client_key, jobs.chain.chain_id, market.address, root).header
            request = urllib.request.Request(url, headers={"Authorization": token})
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert json.loads(resp.read())["root"] == "0x" + root.hex()
            # the client takes its whole result with its own keystore
            client_store = write_keystore(tmp_path / "client.json", client_key, "pw", 2)
            monkeypatch.setenv("TEST_CLIENT_PASSWORD", "pw")
            result_dir = tmp_path / "result"
            fetched = CliRunner().invoke(
                main,
                ["fetch-result", str(job_id), "--out", str(result_dir),
                 "--keystore", str(client_store), "--password-env", "TEST_CLIENT_PASSWORD"],
            )  # fmt: skip
            assert fetched.exit_code == 0, fetched.output
            summary = json.loads(fetched.output.strip().splitlines()[-1])
            assert summary["root"] == "0x" + root.hex() and summary["fetched"] == AGENT_SHARDS
            assert len(list(result_dir.glob("shard-*"))) == AGENT_SHARDS
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output
    assert f"bundles at http://127.0.0.1:{port}" in output
    assert "stopping after this step" in output
    assert farm_key.key.hex().removeprefix("0x") not in output


def test_unreachable_node__one_line__without_the_urls_credentials_or_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node providers put API keys in the URL's path (and some in its userinfo): a node that
    cannot be reached is named by scheme, host and port only."""
    key = Account.create()
    keystore = write_keystore(tmp_path / "client.json", key.key, "pw-not-echoed", 2)
    monkeypatch.setenv("NEUROTOKEN_CLIENT_PASSWORD", "pw-not-echoed")
    rpc = "http://user:hunter2@127.0.0.1:1/v3/SECRETKEY"
    result = CliRunner().invoke(
        main,
        ["fetch-result", "1", "--out", str(tmp_path / "out"), "--keystore", str(keystore),
         "--market", "0x5FbDB2315678afecb367f032d93F642f64180aa3", "--rpc", rpc],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "cannot reach the node at http://127.0.0.1:1" in result.output
    for secret in ("SECRETKEY", "hunter2", "pw-not-echoed"):
        assert secret not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "bad",
    [
        {"NEUROTOKEN_MARKET": "0x12"},
        {"NEUROTOKEN_FEE_BUMP_PCT": "5"},
        {"NEUROTOKEN_RECEIPT_TIMEOUT_S": "soon"},
    ],
)
def test_bad_settings_beside_secrets__one_line_naming_the_variable__no_secret(
    bad: dict[str, str],
) -> None:
    secret, api_key = "Zq7pW3xKv", "Hj4rT8mNc"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "NEUROTOKEN_RPC_URL": f"https://u:{secret}@rpc.example/v3/{api_key}",
        **bad,
    }
    result = subprocess.run(
        [sys.executable, "-m", "neurotoken.provider", "agent", "status"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for value in (secret, api_key):
        assert not any(value[i : i + 5] in output for i in range(len(value) - 4)), output
    (line,) = [line for line in output.splitlines() if "bad settings" in line]
    assert next(iter(bad)) in line

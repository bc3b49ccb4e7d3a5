"""The operators' run books, as strangers paste them (issue 15): docs/oracle.md for three
oracles and docs/provider-agent.md for a farm, each command a real process in a clean
environment (no make, nothing exported but what the docs export), against one anvil node
(one-second blocks: the oracles wait for confirmations).

A client posts a real shelf job; the agent takes, computes, serves and submits it; the three
oracles verify, sign, gather a quorum and settle; the client downloads its result; the farm
reports and withdraws its earnings; `oracle status` and `oracle settle --dry-run` say so.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from eth_account import Account
from eth_typing import HexStr

from devchain.localnet import (
    Anvil,
    Client,
    anvil_keys,
    free_port,
    free_ports,
    setup_local_market,
    small_spec,
    transact,
    wait_until,
)
from neurotoken.market.states import JobState
from neurotoken.units import NTK
from tests.cli.clean import BIN, ROOT, run_ok


class Shell:
    """A clean environment: PATH, HOME and ape's data folder, plus what a doc exports."""

    def __init__(self, home: Path, exports: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "APE_DATA_FOLDER": str(home / "ape"),
            **(exports or {}),
        }

    def run(self, *args: str, cwd: Path = ROOT) -> str:
        return run_ok("python", *args, env=self.env, cwd=cwd)

    def start(self, *args: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [str(BIN / "python"), *args],
                cwd=cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as systemd stops a service; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    with Anvil(block_time=1, mixed=True, log_path=tmp_path / "anvil.log") as node:
        yield node


def test_operator_run_books__three_oracles_and_an_agent__job_paid_unattended(
    anvil: Anvil, tmp_path: Path
) -> None:
    w3 = anvil.web3()
    m = setup_local_market(w3, oracle_count=3, threshold=2, providers=0)
    keys = anvil_keys(8)
    farm_key = keys[6]
    farm = Account.from_key(farm_key).address
    transact(w3, m.token.functions.mint(farm, 5_000 * NTK), m.owner)
    market = m.market.address
    rpc = anvil.url
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # -- docs/oracle.md, once per oracle (each on "its own machine": its own folder)
        ports = free_ports(len(m.oracle_keys))
        oracle_dirs = []
        for i, key in enumerate(m.oracle_keys, start=1):
            folder = tmp_path / f"oracle{i}"
            folder.mkdir()
            password = f"oracle{i}-password"
            keygen = Shell(folder, {"ORACLE_KEY": key, f"ORACLE{i}_PASSWORD": password})
            made = json.loads(
                keygen.run(
                    "-m", "oracle", "keystore", "oracle.json", "--key-env", "ORACLE_KEY",
                    "--password-env", f"ORACLE{i}_PASSWORD", cwd=folder,
                )
            )  # fmt: skip
            assert made["address"] == Account.from_key(key).address
            assert key.removeprefix("0x") not in (folder / "oracle.json").read_text()
            peers = [f"http://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i - 1]
            shell = Shell(
                folder,
                {
                    "ORACLE_RPC_URL": rpc,
                    "ORACLE_MARKET": market,
                    "ORACLE_START_BLOCK": str(m.deploy_block),
                    "ORACLE_KEYSTORE": "oracle.json",
                    "ORACLE_PASSWORD_ENV": f"ORACLE{i}_PASSWORD",
                    f"ORACLE{i}_PASSWORD": password,
                    "ORACLE_PEERS": ",".join(peers),
                    "ORACLE_HTTP_HOST": "127.0.0.1",
                    "ORACLE_HTTP_PORT": str(ports[i - 1]),
                    "ORACLE_POLL_INTERVAL_S": "0.25",
                },
            )
            procs.append(shell.start("-m", "oracle", "run", cwd=folder, log=folder / "log"))
            oracle_dirs.append((folder, shell))
        for port, proc in zip(ports, procs, strict=True):
            _wait_healthy(port, proc)

        # -- docs/provider-agent.md
        home = tmp_path / "farm"
        (home / "ape" / "accounts").mkdir(parents=True)
        keystore = Account.encrypt(HexStr(farm_key), "farm-pw", kdf="pbkdf2", iterations=1024)
        (home / "ape" / "accounts" / "farm.json").write_text(json.dumps(keystore))
        agent = Shell(
            home,
            {
                "NEUROTOKEN_RPC_URL": rpc,
                "NEUROTOKEN_MARKET": market,
                "NEUROTOKEN_PROVIDER_KEYSTORE": "farm",
                "NEUROTOKEN_PROVIDER_PASSWORD": "farm-pw",
            },
        )
        a = ("-m", "neurotoken.provider", "agent")
        registered = agent.run(*a, "register", "--stake", "1000",
                               "--metadata-uri", "https://farm.example/offer.json")  # fmt: skip
        assert "registered" in registered and "1,000 NTK stake" in registered
        assert "1,000 NTK" in agent.run(*a, "status")
        # a client posts a job: 16 small shards, 100 NTK
        spec = small_spec(seed=77)
        job_id = Client(m, tmp_path / "specs").post(spec, k=4, collateral=400 * NTK)
        posted_in = int(w3.eth.block_number)  # `jobs` reads confirmed blocks (2 by default)
        wait_until(lambda: w3.eth.block_number >= posted_in + 2, 30, what="two confirmations")
        jobs = agent.run(*a, "jobs", "--min-price-per-shard", "0.5")
        assert f"job {job_id}" in jobs
        serve_port = free_port()
        procs.append(
            agent.start(
                *a, "run", "--min-price-per-shard", "0.5", "--serve-host", "127.0.0.1",
                "--serve-port", str(serve_port), "--public-url", f"http://127.0.0.1:{serve_port}",
                "--state", "provider-state", "--store", "bundles", "--poll", "0.5", "--quiet",
                cwd=home, log=home / "agent.log",
            )
        )  # fmt: skip
        wait_until(
            lambda: m.state(job_id) == JobState.PAID or procs[-1].poll() is not None,
            180,
            what="the job to be paid",
        )
        assert m.state(job_id) == JobState.PAID, (home / "agent.log").read_text()[-3000:]

        # the client fetches its whole result (README: a client's side)
        client_home = tmp_path / "client"
        (client_home / "ape" / "accounts").mkdir(parents=True)
        client_store = Account.encrypt(HexStr(m.client_key), "client-pw", kdf="pbkdf2",
                                       iterations=1024)  # fmt: skip
        (client_home / "ape" / "accounts" / "client.json").write_text(json.dumps(client_store))
        client = Shell(client_home, {"NEUROTOKEN_CLIENT_PASSWORD": "client-pw"})
        fetched = client.run(
            "-m", "neurotoken.provider", "fetch-result", str(job_id), "--out",
            str(client_home / "result"), "--keystore", "client", "--market", market,
            "--rpc", rpc,
        )  # fmt: skip
        assert len(list((client_home / "result").glob("shard-*"))) == 16, fetched

        # the oracles' side: status from the database, settle --dry-run says it is done
        folder, shell = oracle_dirs[0]
        wait_until(
            lambda: _settled(shell.run("-m", "oracle", "status", cwd=folder)) >= 1,
            60,
            what="oracle1's store to record the settlement",
        )
        peers = [arg for p in ports[1:] for arg in ("--peer", f"http://127.0.0.1:{p}")]
        dry = shell.run(
            "-m", "oracle", "settle", "--job", str(job_id), *peers, "--rpc-url", rpc,
            "--market", market, "--dry-run", cwd=folder,
        )  # fmt: skip
        assert "already_settled" in dry

        # the farm: earnings, then withdraw them
        assert _stop(procs.pop()) == 0  # the agent stops cleanly on SIGTERM
        earnings = json.loads(agent.run(*a, "earnings", "--json"))
        assert int(earnings["net_ntk"]) == 97_500 * NTK // 1000, earnings
        assert "withdrew 97.5 NTK" in agent.run(*a, "withdraw-earnings")
    finally:
        codes = [_stop(p) for p in procs]
    assert codes == [0, 0, 0], "an oracle did not stop cleanly on SIGTERM"


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    wait_until(
        lambda: _healthy(port) or process.poll() is not None, 60, what="an oracle's /healthz"
    )
    assert process.poll() is None, "an oracle exited at start-up"


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _settled(status_json: str) -> int:
    data = json.loads(status_json)
    return int(data["jobs_by_state"].get("settled", 0))

"""Helpers shared by the oracle's end-to-end tests."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections import Counter
from typing import Any

import requests
from aiohttp import web
from eth_account import Account

from devchain.localnet import Market, OracleProcess, wait_until
from neurotoken.market.verdicts import MarketDomain, Verdict, sign_verdict
from neurotoken.provider import BundleServer
from oracle.settings import REPO_ROOT
from oracle.store import Store

# tests/oracle/test_crash.py reads these two from here.
from tests.constants import PAID as PAID
from tests.constants import REJECTED as REJECTED


def settle_counts(m: Market) -> Counter[int]:
    """How many JobPaid + JobRejected logs each job has on chain."""
    return Counter(job_id for _, job_id, _ in m.settlement_logs())


def wait_settled(m: Market, expected: dict[int, int], timeout: float = 90) -> None:
    """Waits until every job is in its expected state (PAID or REJECTED)."""
    wait_until(
        lambda: all(m.state(j) == s for j, s in expected.items()),
        timeout,
        what=f"jobs {expected} to settle (now {[m.state(j) for j in expected]})",
    )


def assert_settled_once(m: Market, job_ids: list[int]) -> None:
    counts = settle_counts(m)
    assert {j: counts[j] for j in job_ids} == dict.fromkeys(job_ids, 1), counts


def store_of(process: OracleProcess) -> Store:
    """The oracle's store, read from the test (one engine per database, reused)."""
    return _store(process.database_url or f"sqlite:///{process.folder / 'oracle.sqlite'}")


@functools.lru_cache(maxsize=64)
def _store(url: str) -> Store:
    return Store(url)


def events_of(processes: list[OracleProcess], name: str) -> list[dict[str, Any]]:
    return [e for p in processes for e in p.events(name)]


class RogueOracle:
    """A registered oracle that signs 'accept' for every submitted job, whatever the work,
    and serves those signatures like an honest oracle would."""

    def __init__(self, m: Market, private_key: str) -> None:
        self.m = m
        self.key = private_key
        self.address = Account.from_key(private_key).address
        self.hits = 0
        domain = MarketDomain(int(m.w3.eth.chain_id), m.market.address)

        async def signatures(request: web.Request) -> web.Response:
            job_id = int(request.match_info["job_id"])
            self.hits += 1
            job = m.job(job_id)
            root = job.result_root
            seed = bytes(m.market.functions.challengeSeed(job_id, job.seed_block).call())
            signed = sign_verdict(private_key, domain, Verdict(job_id, root, seed, True))
            return web.json_response(
                {"jobId": job_id, "signatures": [json.loads(signed.to_json())]}
            )

        app = web.Application()
        app.router.add_get("/signatures/{job_id}", signatures)
        self.server = BundleServer(app).start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


class GarbagePeer:
    """A peer that answers every request with something unusable, in turn: broken JSON,
    wrong shapes, a signature by a non-oracle, one for another market, a forged signer,
    an oversized body, a server error."""

    def __init__(self, m: Market, stranger_key: str) -> None:
        self.hits = 0
        chain_id = int(m.w3.eth.chain_id)
        good_domain = MarketDomain(chain_id, m.market.address)
        other_domain = MarketDomain(chain_id, "0x" + "12" * 20)
        oracle_key = m.oracle_keys[0]

        def answers(job_id: int) -> list[web.Response]:
            job = m.job(job_id)
            root = job.result_root
            seed = bytes(m.market.functions.challengeSeed(job_id, job.seed_block).call())
            verdict = Verdict(job_id, root, seed, True)
            stranger = json.loads(sign_verdict(stranger_key, good_domain, verdict).to_json())
            other_market = json.loads(sign_verdict(oracle_key, other_domain, verdict).to_json())
            forged = json.loads(sign_verdict(stranger_key, good_domain, verdict).to_json())
            forged["signer"] = Account.from_key(oracle_key).address  # claims to be an oracle
            malformed = dict(stranger, signature="0x1234")
            return [
                web.Response(text="{not json", content_type="application/json"),
                web.json_response({"signatures": "nope"}),
                web.json_response({"jobId": job_id, "signatures": [stranger]}),
                web.json_response({"jobId": job_id, "signatures": [other_market]}),
                web.json_response({"jobId": job_id, "signatures": [forged, malformed, 7]}),
                web.Response(body=b"[" * (400 * 1024), content_type="application/json"),
                web.Response(status=500, text="boom"),
            ]

        async def signatures(request: web.Request) -> web.Response:
            options = answers(int(request.match_info["job_id"]))
            self.hits += 1
            return options[self.hits % len(options)]

        async def batch(_: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(text='{"kind": "batch"}', content_type="application/json")

        app = web.Application()
        app.router.add_get("/signatures/{job_id}", signatures)
        app.router.add_post("/batch-signatures", batch)
        self.server = BundleServer(app).start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def oracle_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    """Runs `python -m oracle ARGS` and returns its parsed JSON output."""
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    full_env.update({"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"})
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "oracle", *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result


def metrics(process: OracleProcess) -> dict[str, float]:
    from oracle.metrics import parse_text

    return parse_text(requests.get(f"{process.url}/metrics", timeout=5).text)


def wait_ingested(processes: list[OracleProcess], block: int, timeout: float = 60) -> None:
    """Waits until every oracle's ingestor has processed `block` (its cursor metric): what an
    oracle would do with the chain up to there, it has done. A test that asserts something
    did *not* happen waits on this rather than a sleep."""

    def cursor(process: OracleProcess) -> float:
        try:
            return metrics(process).get("oracle_cursor_block", -1)
        except requests.RequestException:
            return -1

    wait_until(
        lambda: all(cursor(p) >= block for p in processes),
        timeout,
        what=f"every oracle to ingest block {block}",
    )

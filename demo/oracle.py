"""A `make demo` stage: three oracle processes (threshold two) judge an honest and a
cheating farm on the economy's market.

`oracle_stage(economy)` uses the chain the other stages ran on (a thread mines a block every
second, as the oracles wait for confirmations; transactions still mine at once) and prints
each step:

1. three oracles start as separate ``python -m oracle run`` processes, each with its own
   encrypted keystore (the market's oracle keys), SQLite database and HTTP port, peered with
   the other two, reading the market from the current block on;
2. the client posts two 16-shard synthetic-shelf jobs (k = 4 challenged shards, 100 NTK each,
   400 NTK collateral), one reserved for farm A and one for farm B;
3. farm A computes its shards; farm B publishes forged outputs under a self-consistent
   Merkle tree; both serve their bundles over HTTP and commit the root;
4. each oracle reads the challenge from the chain, re-executes the challenged shards, signs
   its verdict, collects a peer's signature and one of them settles: farm A is paid (less the
   2.5% fee), farm B's collateral is slashed (half to the client, half burned);
5. the oracles' own view: jobs by state from ``/metrics``, and their signed verdicts.

Everything is stopped at the end; the oracles' logs and databases stay in `folder`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests
from web3 import HTTPProvider, Web3

from demo.economy import Economy
from devchain.localnet import (
    BlockTicker,
    Client,
    Provider,
    attach_market,
    oracle_set,
    running,
    small_spec,
    wait_until,
)
from neurotoken.market.states import JobState
from neurotoken.units import NTK
from oracle.metrics import parse_text


@dataclass(frozen=True)
class OracleDemoResult:
    market: str
    honest_job: int
    cheat_job: int
    honest_earned_ntk: int
    cheat_stake_lost_ntk: int
    client_compensation_ntk: int
    burned_ntk: int
    folder: Path


def _ntk(wei: int) -> str:
    return f"{wei / NTK:,.2f} NTK"


def oracle_stage(e: Economy, folder: Path | None = None) -> OracleDemoResult:
    """Runs the stage (about half a minute) and returns what happened."""
    r = e.report.stage("oracle")
    market, cast, echo = e.need_market(), e.cast, e.echo
    folder = Path(folder or tempfile.mkdtemp(prefix="neurotoken-oracle-demo-"))
    echo("== Three oracles (threshold two) judge an honest and a cheating farm")
    url = str(e.chain.provider.uri)
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    m = attach_market(
        w3,
        str(e.need_token().address),
        str(market.address),
        owner=cast.operator.address,
        client=cast.client.address,
        providers=[cast.farm_a.address, cast.farm_b.address],
        oracle_keys=[str(o.private_key) for o in cast.oracles],
        deploy_block=e.market_block,
    )
    e.need_token().approve(market, 200 * NTK, sender=cast.client)  # the two jobs' payments
    start_block = int(w3.eth.block_number)
    with BlockTicker(url, 1.0):
        echo(f"the chain at {url} now also mines a block every second; market {market.address}")
        honest = Provider(m, cast.farm_a.address, folder / "honest").start()
        cheat = Provider(m, cast.farm_b.address, folder / "cheat", cheat_fraction=1.0).start()
        oracles = oracle_set(
            m, folder / "oracles", url, env={"ORACLE_START_BLOCK": str(start_block)}
        )
        try:
            with running(oracles):
                for o in oracles:
                    o.wait_ready()
                    echo(f"  {o.name} {o.address} serving {o.url} (log {o.log_path})")
                client = Client(m, folder / "specs")
                stake_before = m.market.functions.getProvider(cheat.address).call()[0]
                earned_before = m.market.functions.getProvider(honest.address).call()[1]
                supply_before = m.token.functions.totalSupply().call()
                spec_a, spec_b = small_spec(seed=2024), small_spec(seed=2025)
                honest_job = client.post(spec_a, provider=honest.address)
                cheat_job = client.post(spec_b, provider=cheat.address)
                client_before = m.token.functions.balanceOf(m.client).call()  # after escrow
                echo(f"client posted job {honest_job} for farm A and job {cheat_job} for "
                     "farm B: 16 shards, k = 4, 100 NTK each, 400 NTK collateral")  # fmt: skip
                block = honest.fulfil(honest_job, spec_a)
                echo(f"farm A computed job {honest_job}, serves its bundle at "
                     f"{honest.url}, committed the root in block {block}")  # fmt: skip
                block = cheat.fulfil(cheat_job, spec_b)
                echo(f"farm B forged every shard of job {cheat_job}, committed a "
                     f"self-consistent root in block {block}")  # fmt: skip
                wait_until(
                    lambda: (
                        m.state(honest_job) == JobState.PAID
                        and m.state(cheat_job) == JobState.REJECTED
                    ),
                    120,
                    what="both jobs to settle",
                )
                # a quorum of two settles a job; the third oracle may still be verifying it
                wait_until(lambda: all(_settled(o.url) == 2 for o in oracles), 30, what="stores")
                for o in oracles:
                    for ev in o.events("verified"):
                        verdict = "accept" if ev["accepted"] else "reject"
                        why = f" ({ev['reasons'][0][:60]}...)" if ev["reasons"] else ""
                        echo(f"  {o.name} re-executed shards {ev['challenged']} of job "
                             f"{ev['job']}: {verdict}{why}")  # fmt: skip
                for name, job_id, tx in m.settlement_logs():
                    if job_id not in (honest_job, cheat_job):
                        continue
                    sender = next(
                        (o.name for o in oracles
                         for e in o.events("tx_recorded") if job_id in e["jobs"]),
                        "someone",
                    )  # fmt: skip
                    echo(f"job {job_id}: {name} in tx {tx[:18]}... sent by {sender}")
                earned = m.market.functions.getProvider(honest.address).call()[1] - earned_before
                stake_after = m.market.functions.getProvider(cheat.address).call()[0]
                compensation = m.token.functions.balanceOf(m.client).call() - client_before
                burned = supply_before - m.token.functions.totalSupply().call()
                echo(f"farm A earned {_ntk(earned)} (100 NTK less the 2.5% fee)")
                echo(f"farm B's stake {_ntk(stake_before)} -> {_ntk(stake_after)}: "
                     f"{_ntk(stake_before - stake_after)} slashed")  # fmt: skip
                echo(f"client got its 100 NTK back plus {_ntk(compensation - 100 * NTK)} "
                     f"compensation; {_ntk(burned)} burned")  # fmt: skip
                for o in oracles:
                    sigs = requests.get(f"{o.url}/signatures/{cheat_job}", timeout=5).json()
                    served = (
                        f"serves its signed verdict on job {cheat_job}: "
                        f"accepted={sigs['signatures'][0]['verdicts'][0]['accepted']}"
                        if sigs["signatures"]
                        else f"job {cheat_job} settled before it had signed"
                    )
                    echo(f"  {o.name}: {_settled(o.url)} jobs settled in its store; {served}")
        finally:
            honest.stop()
            cheat.stop()
    echo(f"oracle logs and databases: {folder}")
    r.check(f"job {honest_job} paid", JobState.PAID, m.state(honest_job))
    r.check(f"job {cheat_job} rejected", JobState.REJECTED, m.state(cheat_job))
    r.check("farm A earned 100 NTK less the fee", 97_500 * NTK // 1000, earned)
    r.check("farm B lost its 400 NTK collateral", 400 * NTK, stake_before - stake_after)
    r.check("the client got half of it", 200 * NTK, compensation - 100 * NTK)
    r.check("the other half burned", 200 * NTK, burned)
    r.figures.update(
        folder=str(folder),
        honest_job=honest_job,
        cheat_job=cheat_job,
        earned_ntk=earned,
        slashed_ntk=stake_before - stake_after,
        burned_ntk=burned,
    )
    return OracleDemoResult(
        market=m.market.address,
        honest_job=honest_job,
        cheat_job=cheat_job,
        honest_earned_ntk=int(earned),
        cheat_stake_lost_ntk=int(stake_before - stake_after),
        client_compensation_ntk=int(compensation - 100 * NTK),
        burned_ntk=int(burned),
        folder=folder,
    )


def _settled(url: str) -> int:
    try:
        text = requests.get(f"{url}/metrics", timeout=5).text
    except requests.RequestException:
        return -1
    return int(parse_text(text).get('oracle_jobs{state="settled"}', -1))

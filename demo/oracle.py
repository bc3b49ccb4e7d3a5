"""A `make demo` stage: three oracle processes (threshold two) judge an honest and a
cheating provider on a local chain.

`oracle_stage(echo)` starts its own anvil node (one-second blocks: the oracles wait for
confirmations, so the chain must move on its own), deploys NTK and the market, and prints
each step:

1. three oracles start as separate ``python -m oracle run`` processes, each with its own
   encrypted keystore, SQLite database and HTTP port, peered with the other two;
2. a client posts two 16-shard synthetic-shelf jobs (k = 4 challenged shards, 100 NTK each,
   400 NTK collateral), one reserved for each provider;
3. the honest provider computes its shards; the cheater publishes forged outputs under a
   self-consistent Merkle tree; both serve their bundles over HTTP and commit the root;
4. each oracle reads the challenge from the chain, re-executes the challenged shards, signs
   its verdict, collects a peer's signature and one of them settles: the honest provider is
   paid (less the 2.5% fee), the cheater's collateral is slashed (half to the client, half
   burned);
5. the oracles' own view: jobs by state from ``/metrics``, and their signed verdicts.

Everything is stopped at the end; the oracles' logs and databases stay in `folder`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from devchain.localnet import (
    Anvil,
    Client,
    Provider,
    oracle_set,
    running,
    setup_local_market,
    small_spec,
    wait_until,
)
from neurotoken.units import NTK
from oracle.metrics import parse_text

PAID, REJECTED = 4, 5


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


def oracle_stage(
    echo: Callable[[str], None] = print, folder: Path | None = None
) -> OracleDemoResult:
    """Runs the stage (about half a minute) and returns what happened."""
    folder = Path(folder or tempfile.mkdtemp(prefix="neurotoken-oracle-demo-"))
    echo("== Stage: three oracles (threshold two) judge an honest and a cheating provider")
    with Anvil(block_time=1, mixed=True, log_path=folder / "anvil.log") as anvil:
        w3 = anvil.web3()
        m = setup_local_market(w3, oracle_count=3, threshold=2)
        echo(f"anvil at {anvil.url} (1-second blocks); market {m.market.address}")
        honest = Provider(m, m.providers[0], folder / "honest").start()
        cheat = Provider(m, m.providers[1], folder / "cheat", cheat_fraction=1.0).start()
        oracles = oracle_set(
            m, folder / "oracles", anvil.url, env={"ORACLE_START_BLOCK": str(m.deploy_block)}
        )
        try:
            with running(oracles):
                for o in oracles:
                    o.wait_ready()
                    echo(f"  {o.name} {o.address} serving {o.url} (log {o.log_path})")
                client = Client(m, folder / "specs")
                stake_before = m.market.functions.getProvider(cheat.address).call()[0]
                supply_before = m.token.functions.totalSupply().call()
                spec_a, spec_b = small_spec(seed=2024), small_spec(seed=2025)
                honest_job = client.post(spec_a, provider=honest.address)
                cheat_job = client.post(spec_b, provider=cheat.address)
                client_before = m.token.functions.balanceOf(m.client).call()  # after escrow
                echo(f"client posted job {honest_job} for the honest provider and job "
                     f"{cheat_job} for the cheater: 16 shards, k = 4, 100 NTK each, "
                     "400 NTK collateral")  # fmt: skip
                block = honest.fulfil(honest_job, spec_a)
                echo(f"honest provider computed job {honest_job}, serves its bundle at "
                     f"{honest.url}, committed the root in block {block}")  # fmt: skip
                block = cheat.fulfil(cheat_job, spec_b)
                echo(f"cheater forged every shard of job {cheat_job}, committed a "
                     f"self-consistent root in block {block}")  # fmt: skip
                wait_until(
                    lambda: m.state(honest_job) == PAID and m.state(cheat_job) == REJECTED,
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
                    sender = next(
                        (o.name for o in oracles
                         for e in o.events("tx_recorded") if job_id in e["jobs"]),
                        "someone",
                    )  # fmt: skip
                    echo(f"job {job_id}: {name} in tx {tx[:18]}... sent by {sender}")
                earned = m.market.functions.getProvider(honest.address).call()[1]
                stake_after = m.market.functions.getProvider(cheat.address).call()[0]
                compensation = m.token.functions.balanceOf(m.client).call() - client_before
                burned = supply_before - m.token.functions.totalSupply().call()
                echo(f"honest provider earned {_ntk(earned)} (100 NTK less the 2.5% fee)")
                echo(f"cheater's stake {_ntk(stake_before)} -> {_ntk(stake_after)}: "
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


if __name__ == "__main__":
    result = oracle_stage()
    print(json.dumps({k: str(v) for k, v in result.__dict__.items()}, indent=2))

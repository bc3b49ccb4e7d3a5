"""A `make demo` stage: a provider agent takes a real synthetic-shelf job on the local chain.

`agent_stage(economy)` runs on the economy's market (3 oracles, 2 needed, 2.5% fee) and
prints each step:

1. farm C's key is decrypted from an encrypted keystore, and the agent registers it with
   1,000 NTK of the NTK it bought in the sale as stake (approve + register);
2. a client posts the 16-shard shelf-images job (its canonical spec in a file whose keccak256
   is the posted spec hash), escrowing 160 NTK; 100 NTK of collateral is asked;
3. one agent step: the posted job is seen, its spec fetched and hash-checked, the policy
   applied, the job accepted, its shards computed on all cores, the bundle published and
   served over HTTP, and the result root submitted with the bundle URL;
4. two oracles each read the challenge from the chain, fetch the challenged shards from the
   bundle URL (with a bundle access token each: the provider serves a job's result to its
   client and oracles only), re-execute them, and sign an EIP-712 verdict
   (neurotoken.market.verdicts); anyone settles with the two signatures; the client downloads its
   whole result with its own key, and a stranger who knows the URL gets nothing;
5. the agent sees the job paid, reports its earnings from chain events, and withdraws them;
6. a few of the job's images are saved with their labels drawn on.

The agent talks to the node with web3.py only, exactly as the long-running CLI does; ape only
plays the client and the oracles' settlement transaction.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from demo.economy import Economy, approx
from neurotoken.chain.keystore import load_account, write_keystore
from neurotoken.jobs import ShelfImagesSpec, keccak256, parse_spec, spec_json
from neurotoken.market.ops import market_reader, record_seed_mixes
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, Verdict, assemble_quorum, sign_verdict
from neurotoken.proofs import Commitment, HttpSource, LocalStore, verify_job
from neurotoken.proofs.access import BundleAccess
from neurotoken.proofs.results import ResultError, fetch_result
from neurotoken.provider import account as acct
from neurotoken.provider.agent import AgentConfig, ProviderAgent
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.compute import default_workers
from neurotoken.provider.earnings import collect_earnings
from neurotoken.provider.policy import Policy
from neurotoken.provider.previews import save_job_previews
from neurotoken.provider.readers import agent_gate
from neurotoken.provider.server import BundleServer, make_app
from neurotoken.units import NTK
from neurotoken.workloads.preview import DEMO_SPEC

PASSWORD_ENV = "NEUROTOKEN_DEMO_PROVIDER_PASSWORD"


def agent_stage(e: Economy) -> list[Path]:
    """Runs the stage on the economy's market; returns the PNGs written under
    `e.out_dir / "agent-job"`."""
    out_dir = e.out_dir / "agent-job"
    r = e.report.stage("agent")
    market, chain, cast = e.need_market(), e.chain, e.cast
    client, farm, stranger, echo = cast.client, cast.farm_c, cast.stranger, e.echo
    oracles = sorted(cast.oracles, key=lambda a: int(a.address, 16))
    echo("== A provider agent (farm C) takes a synthetic-shelf job on the same market")
    supply_before = int(e.need_token().totalSupply())

    with tempfile.TemporaryDirectory(prefix="ntk-agent-") as tmp_name:
        tmp = Path(tmp_name)
        # 1. The farm's key, as the agent gets it: an encrypted keystore and a password variable
        # (a 2-round pbkdf2 keystore keeps the demo quick; real ones use scrypt, the default).
        keystore = write_keystore(tmp / "farm.json", farm.private_key, "demo password", 2)
        os.environ[PASSWORD_ENV] = "demo password"
        try:
            key = load_account(str(keystore), PASSWORD_ENV)
        finally:
            del os.environ[PASSWORD_ENV]
        chain_client = MarketClient.connect(str(chain.provider.uri), market.address, key)
        echo(f"provider key for {key.address} decrypted from {keystore.name}")
        acct.register(chain_client, 1_000 * NTK, "https://farm.example/offer.json", echo)
        r.check("farm C registered with 1,000 NTK of stake",
                1_000 * NTK, chain_client.get_provider().stake_ntk)  # fmt: skip

        # 2. A client posts the job.
        spec = parse_spec(DEMO_SPEC)
        assert isinstance(spec, ShelfImagesSpec)
        spec_file = tmp / "shelf-job.json"
        spec_file.write_bytes(spec_json(spec))
        now = int(chain.pending_timestamp)
        e.need_token().approve(market, 160 * NTK, sender=client)
        request = {
            "specHash": keccak256(spec_file.read_bytes()),
            "specURI": spec_file.as_uri(),
            "paymentNtk": 160 * NTK,
            "provider": "0x" + "00" * 20,
            "collateralNtk": 100 * NTK,
            "shardCount": spec.shard_count,
            "challengeCount": 8,
            "acceptBy": now + 3600,
            "deliverBy": now + 4 * 3600,
            "verdictBy": now + 8 * 3600,
        }
        job_id = int(market.postJob(request, sender=client).return_value)
        echo(
            f"client posted job {job_id}: {spec.shard_count} shards x {spec.images_per_shard} "
            f"images of {spec.scene.width}x{spec.scene.height}, 160 NTK escrowed, k = 8"
        )

        # 3. The agent: one step sees, checks, accepts, computes, publishes and submits.
        store = LocalStore(tmp / "bundles")
        gate = agent_gate(tmp / "state", chain_client)  # each result to its client and oracles
        with BundleServer(make_app(store, gate)) as server:
            config = AgentConfig(
                state_dir=tmp / "state",
                store_dir=tmp / "bundles",
                bundle_uri=server.url,
                policy=Policy(min_price_per_shard_ntk=5 * NTK, max_collateral_ntk=500 * NTK),
                workers=default_workers(),
            )
            agent = ProviderAgent(chain_client, config, echo=lambda line: echo(f"  agent: {line}"))
            echo(
                "agent policy: at least 5 NTK per shard net of fee, collateral at most "
                f"500 NTK; bundles served at {server.url}"
            )
            agent.step()
            job = chain_client.get_job(job_id)
            echo(f"job {job_id} on chain: {job.state.name}, root 0x{job.result_root.hex()}")

            # 4. Oracles verify the challenged shards and sign; anyone settles.
            chain.mine(int(market.randaoDelay()))  # the seed block; anyone records its mix
            recorder = e.project.RandaoRecorder.at(market.randaoRecorder())
            record_seed_mixes(recorder, market, [job], sender=client)
            chain.mine(1)
            seed = bytes(market.challengeSeed(job_id, job.seed_block))
            commitment = Commitment(job_id, job.spec_hash, job.shard_count, job.result_root)
            domain = MarketDomain(chain.chain_id, market.address)
            signed = []
            for oracle in oracles[:2]:
                access = BundleAccess.sign(
                    oracle.private_key, chain.chain_id, market.address, job.result_root
                )
                source = HttpSource(server.url, access=access)
                verdict = verify_job(spec, commitment, seed, job.challenge_count, source)
                echo(
                    f"oracle {oracle.address[:10]}: challenged {list(verdict.challenged)} - "
                    f"{verdict.summary()}"
                )
                signed.append(
                    sign_verdict(
                        oracle.private_key,
                        domain,
                        Verdict(job_id, job.result_root, seed, verdict.accepted),
                    )
                )
            signatures = assemble_quorum(
                signed, oracles=[o.address for o in oracles], threshold=int(market.threshold())
            )
            accepted = all(s.verdicts[0].accepted for s in signed)
            # the job's current record goes with the settlement (the market keeps its digest)
            tx = market.settle(job_id, job.record(), accepted, signatures, sender=cast.treasury)
            echo(f"settled with 2 oracle signatures ({tx.gas_used:,} gas)")

            def download(who: Any, folder: str) -> int:
                return len(
                    fetch_result(
                        server.url, job.result_root, who.private_key, chain.chain_id,
                        market.address, tmp / folder,
                    ).shards
                )  # fmt: skip

            count = download(client, "result")
            echo(f"client downloaded all {count} outputs, each checked, signing with its own key")
            r.check("client downloaded every output", spec.shard_count, count)
            try:
                download(stranger, "stolen")
                echo("a stranger with the bundle URL got the result (this must not happen)")
                r.check("a stranger gets no output", 1, 0)
            except ResultError as exc:
                refused = "HTTP 403" if "HTTP 403" in str(exc) else str(exc)
                echo(f"a stranger with the bundle URL gets nothing (refused: {refused})")
                r.check("a stranger gets no output", 1, 1)

        # 5. The agent sees the payment and reports.
        agent.step()
        for line in collect_earnings(chain_client).lines():
            echo(f"  {line}")
        before = chain_client.ntk_balance()
        earned = int(market.getProvider(farm).earnedNtk)
        acct.withdraw_earnings(chain_client, lambda line: echo(f"  agent: {line}"))
        echo(f"farm C's NTK balance now {approx(chain_client.ntk_balance())}")
        agent.close()
        final = market_reader(market, e.market_block).get(job_id)  # from its events
        r.check(f"job {job_id} paid", JobState.PAID, int(final.state))
        r.check("farm C earned the payment less the 2.5% fee", 156 * NTK, earned)
        r.check("farm C withdrew its earnings", before + earned, chain_client.ntk_balance())
        r.figures.update(job=job_id, earned_ntk=earned,
                         burned_ntk=supply_before - int(e.need_token().totalSupply()))  # fmt: skip

        # 6. Pictures.
        paths = save_job_previews(store, job.result_root, spec, out_dir, 2)
    echo("labelled images of the job: " + ", ".join(str(p) for p in paths))
    return paths

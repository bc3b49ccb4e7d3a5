"""A `make demo` stage: the compute market's rules, step by step, on a local chain.

`market_stage(economy)` deploys a ComputeMarket on the sale's NTK (3 oracles with test keys,
2 needed, 2.5% fee, challenges seeded by the RANDAO mix of the block RANDAO_DELAY after each
commit) and, printing each step:

1. farms A and B register with stake out of the NTK they bought in the sale; the client gets
   its first job quoted: it writes the request for farm A (`quote-request.json` in the output
   folder, as `ape run market post --request-out` does), farm A signs its EIP-712 acceptance
   of the record the job will get, and the client checks the signature off chain and posts
   the job with it and an EIP-2612 permit: one transaction, the job starts Accepted with farm
   A's collateral locked. It posts two more jobs (one with a permit, one reserved for farm B);
2. farm A accepts the second job and commits each of its two results as the Merkle root of
   its shard outputs; the RANDAO mix of the block RANDAO_DELAY after the commit fixes the
   challenge: anyone records it from that block's header (checked against its hash), and the
   challenge is read from the chain and recomputed in Python;
3. the oracles check the challenged shards' inclusion proofs against the committed roots: one
   job's bundle holds, the other's does not (one shard's output differs from what was
   committed); they sign one EIP-712 batch of both verdicts, and anyone settles it in one
   transaction: the honest job pays (less the fee), the other refunds the client and slashes
   the collateral (half to the client, half burned); replaying the batch is refused;
4. farm B never delivers; past the deadline anyone expires the job: refund and slash;
5. farm A withdraws its earnings, the owner sends the fees to the treasury; the market then
   holds exactly the farms' stakes. The quoted job's life took three transactions (post,
   submit, settle), one fewer than the job posted and accepted apart.

The shard outputs are small byte strings (the compute stage shows real work and re-execution);
what the oracles check here is the Merkle commitment the contract binds them to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demo.economy import Economy, record_words
from neurotoken.chain.permit import sign_permit
from neurotoken.jobs.canonical import keccak256
from neurotoken.market.acceptance import quoted_job, sign_acceptance
from neurotoken.market.job import RECORD_EVENTS, OnChainJob
from neurotoken.market.ops import (
    ZERO_ADDRESS,
    MarketOperationError,
    MarketTerms,
    QuoteRequest,
    check_acceptance,
    deploy_market,
    market_reader,
    preflight,
    record_seed_mixes,
)
from neurotoken.market.states import JobState
from neurotoken.market.verdicts import MarketDomain, Verdict, assemble_quorum, sign_batch
from neurotoken.proofs import MerkleTree, challenge_indices, shard_leaf, verify
from neurotoken.units import NTK, format_ntk

SHARDS = 8
CHALLENGES = 4
RANDAO_DELAY = 4
"""Blocks from a commit to its seed block here (`ape run market deploy` defaults to 32: the
run of slots a proposer would need to know the seed when committing; docs/proofs.md)."""


@dataclass(frozen=True)
class DemoResult:
    """What the demo did, for tests and callers."""

    market: str
    paid_job: int
    rejected_job: int
    defaulted_job: int
    provider_earned: int
    fees: int


def _outputs(job_id: int) -> list[bytes]:
    return [f"job {job_id}, shard {i}: output".encode() for i in range(SHARDS)]


def market_stage(e: Economy) -> DemoResult:
    """Deploys the market on the sale's NTK and runs the steps in the module docstring."""
    r = e.report.stage("market")
    token, chain, cast, echo = e.need_token(), e.chain, e.cast, e.echo
    owner, client, honest, idle, treasury = (
        cast.operator, cast.client, cast.farm_a, cast.farm_b, cast.treasury
    )  # fmt: skip
    oracles = sorted(cast.oracles, key=lambda a: int(a.address, 16))
    echo("== The compute market (stake, escrow, challenge, m-of-n verdicts, timeouts)")
    market = deploy_market(
        project=e.project,
        token=token,
        owner=owner.address,
        sender=owner,
        oracles=[o.address for o in oracles],
        threshold=2,
        fee_bps=250,
        unbonding_delay=86_400,
        randao_delay=RANDAO_DELAY,
    )
    e.market, e.market_block = market, int(chain.blocks.head.number)
    e.report.contracts["ComputeMarket"] = str(market.address)
    e.client_ntk_at_market = e.ntk(client)
    echo(
        f"deployed ComputeMarket at {market.address} on the sale's NTK: 2 of 3 oracles, "
        f"fee 2.5%, 1-day unbonding; challenges seeded by the RANDAO mix {RANDAO_DELAY} blocks "
        f"after each commit (recorder {market.randaoRecorder()})"
    )
    for account in (client, honest, idle):
        token.approve(market, 2**256 - 1, sender=account)
    supply_before_market = int(token.totalSupply())

    # 1. providers and jobs
    for account, stake in ((honest, 2_000), (idle, 1_000)):
        tx = market.registerProvider(
            stake * NTK, f"https://gpu.example/{account.address[:8]}.json", sender=account
        )
        echo(
            f"farm {account.address} registered with {stake:,} NTK of its sale NTK as stake "
            f"({tx.gas_used:,} gas)"
        )

    def request(provider: str = ZERO_ADDRESS, payment: int = 100) -> dict[str, Any]:
        now = int(chain.pending_timestamp)
        return {
            "specHash": keccak256(b"demo spec " + now.to_bytes(8, "big")),
            "specURI": "ipfs://demo-spec",
            "paymentNtk": payment * NTK,
            "provider": provider,
            "collateralNtk": 40 * NTK,
            "shardCount": SHARDS,
            "challengeCount": CHALLENGES,
            "acceptBy": now + 600,
            "deliverBy": now + 3_600,
            "verdictBy": now + 7_200,
        }

    def permit(value: int) -> tuple[int, int, bytes, bytes]:
        deadline = int(chain.pending_timestamp) + 600
        signed = sign_permit(
            client.private_key,
            token_name=token.name(),
            token_address=token.address,
            chain_id=chain.chain_id,
            owner=client.address,
            spender=market.address,
            value=value,
            nonce=int(token.nonces(client)),
            deadline=deadline,
        )
        return deadline, signed.v, signed.r, signed.s

    # A quote: the client writes the request for farm A; farm A signs its acceptance of the
    # record the job will get (fee, oracle epoch and threshold in force); the client checks the
    # signature as the market will and posts the job already accepted, paying with a permit.
    token.approve(market, 0, sender=client)  # the permits pay from here on
    domain = MarketDomain(chain.chain_id, market.address)
    written = QuoteRequest(request(provider=honest.address), client.address, chain.chain_id,
                           str(market.address))  # fmt: skip
    quote_file = e.out_dir / "quote-request.json"
    quote_file.parent.mkdir(parents=True, exist_ok=True)
    quote_file.write_text(written.to_json() + "\n")
    echo(f"client wrote its request for farm A to quote: {quote_file}")
    quoted = QuoteRequest.read(quote_file)  # what farm A reads
    terms = MarketTerms.current(market)
    to_sign = quoted_job(quoted.request, client.address, fee_bps=terms.fee_bps,
                         oracle_epoch=terms.oracle_epoch, threshold=terms.threshold)  # fmt: skip
    acceptance = sign_acceptance(honest.private_key, domain, to_sign)
    echo(f"farm A signed its acceptance (EIP-712, {terms}): 0x{acceptance.hex()[:16]}...")
    check_acceptance(market, quoted.request, client.address, acceptance,
                     chain_id=chain.chain_id, at=int(chain.pending_timestamp),
                     from_block=e.market_block)  # fmt: skip
    paid_job = int(market.nextJobId())
    stake_before = int(market.getProvider(honest).stakeNtk)
    tx = market.postAcceptedJob(quoted.request, acceptance, *permit(100 * NTK), sender=client)
    stake_after = int(market.getProvider(honest).stakeNtk)
    posted = OnChainJob.from_record(
        paid_job, record_words(tx.events.filter(market.JobPosted)[0].event_arguments["job"])
    )
    echo(
        f"client checked the signature and posted job {paid_job} with it and a permit: one "
        f"transaction ({tx.gas_used:,} gas), the job starts {posted.state.label}, 40 NTK of "
        "farm A's stake locked"
    )
    r.check(f"job {paid_job} (quoted) starts Accepted", JobState.ACCEPTED, int(posted.state))
    r.check(f"job {paid_job}: farm A's collateral locked by the client's post",
            40 * NTK, stake_before - stake_after)  # fmt: skip
    r.check(f"job {paid_job}: the record farm A signed is the record stored",
            1, int(posted.digest() == bytes(market.jobDigest(paid_job))))  # fmt: skip
    rejected_job = paid_job + 1
    tx = market.postJobWithPermit(request(), *permit(100 * NTK), sender=client)
    echo(f"client posted job {rejected_job} with a permit, one transaction ({tx.gas_used:,} gas)")
    token.approve(market, 2**256 - 1, sender=client)
    defaulted_job = rejected_job + 1
    market.postJob(request(provider=idle.address), sender=client)
    echo(f"client posted job {defaulted_job}, reserved for provider {idle.address}")

    # 2. accept, commit, challenge: the market stores only a digest of each job's record, so
    # every call about a job carries its current record, rebuilt from the job's events
    records = market_reader(market, e.market_block)
    trees: dict[int, MerkleTree] = {}
    for job_id in (paid_job, rejected_job):
        if job_id != paid_job:  # the quoted job was accepted when it was posted
            market.acceptJob(job_id, records.get(job_id).record(), sender=honest)
        trees[job_id] = MerkleTree.of_shards([keccak256(o) for o in _outputs(job_id)])
        tx = market.submitResult(
            job_id,
            records.get(job_id).record(),
            trees[job_id].root,
            SHARDS,
            f"https://bundles.example/{job_id}",
            sender=honest,
        )
        how = "(quoted: accepted when posted)" if job_id == paid_job else "(40 NTK locked) and"
        echo(
            f"provider accepted job {job_id} {how} committed root "
            f"0x{trees[job_id].root.hex()[:16]}..."
        )
    market.acceptJob(defaulted_job, records.get(defaulted_job).record(), sender=idle)
    echo(f"provider {idle.address} accepted job {defaulted_job} (and will never deliver)")
    chain.mine(RANDAO_DELAY)
    jobs = {job_id: records.get(job_id) for job_id in (paid_job, rejected_job)}
    recorder = e.project.RandaoRecorder.at(market.randaoRecorder())
    record_seed_mixes(recorder, market, list(jobs.values()), sender=client)  # anyone may
    chain.mine(1)
    challenged: dict[int, list[int]] = {}
    seeds: dict[int, bytes] = {}
    for job_id, job in jobs.items():
        seeds[job_id] = bytes(market.challengeSeed(job_id, job.seed_block))
        mix = bytes(chain.provider.web3.eth.get_block(job.seed_block)["mixHash"])
        r.check(f"job {job_id}: the seed is its seed block's RANDAO mix",
                1, int(seeds[job_id] == mix))  # fmt: skip
        challenged[job_id] = [int(i) for i in market.challengedShards(job_id, job.record())]
        python = challenge_indices(seeds[job_id], job_id, SHARDS, CHALLENGES)
        r.check(f"job {job_id}: Python derives the contract's challenge",
                1, int(challenged[job_id] == python))  # fmt: skip
        echo(
            f"job {job_id}: seed = RANDAO mix of block {job.seed_block} (commit + "
            f"{RANDAO_DELAY}), recorded from its header; "
            f"challenged shards {challenged[job_id]} (Python agrees)"
        )

    # 3. verdicts: job `rejected_job`'s bundle serves a different output for a challenged shard
    verdicts = []
    for job_id in (paid_job, rejected_job):
        outputs = _outputs(job_id)
        if job_id == rejected_job:
            outputs[challenged[job_id][0]] = b"a different output than the one committed"
        root = jobs[job_id].result_root
        ok = all(
            verify(trees[job_id].proof(i), root, shard_leaf(i, keccak256(outputs[i])))
            for i in challenged[job_id]
        )
        echo(
            f"oracles check job {job_id}'s challenged shards against its root: "
            + ("all hold" if ok else "a shard does not match")
        )
        verdicts.append(Verdict(job_id, root, seeds[job_id], ok))
    domain = MarketDomain(chain.chain_id, market.address)
    signed = [sign_batch(o.private_key, domain, verdicts) for o in oracles[:2]]
    signatures = assemble_quorum(signed, oracles=[o.address for o in oracles], threshold=2)
    entries = [(v.job_id, jobs[v.job_id].record(), v.accepted) for v in verdicts]
    client_before = int(token.balanceOf(client))
    supply_before = int(token.totalSupply())
    tx = market.settleBatch(entries, signatures, sender=treasury)
    echo(
        "two oracles signed one EIP-712 batch; a third party settled both jobs in one "
        f"transaction ({tx.gas_used:,} gas)"
    )
    paid = tx.events.filter(market.JobPaid)[0].event_arguments
    echo(
        f"  job {paid_job} paid: provider earns {format_ntk(int(paid['providerNtk']))}, "
        f"fee {format_ntk(int(paid['feeNtk']))}, collateral unlocked"
    )
    rejected = tx.events.filter(market.JobRejected)[0].event_arguments
    echo(
        f"  job {rejected_job} rejected: client refunded {format_ntk(int(rejected['refundNtk']))} "
        f"(payment + half the collateral), {format_ntk(int(rejected['burnedNtk']))} burned"
    )
    r.check("client refunded payment + half the collateral",
            int(rejected["refundNtk"]), int(token.balanceOf(client)) - client_before)  # fmt: skip
    r.check("the other half of the collateral burned",
            int(rejected["burnedNtk"]), supply_before - int(token.totalSupply()))  # fmt: skip
    r.check("provider earned the payment less the fee", 100 * NTK,
            int(paid["providerNtk"]) + int(paid["feeNtk"]))  # fmt: skip
    try:
        preflight(market, "settleBatch", entries, signatures, sender=treasury.address)
    except MarketOperationError as refusal:
        echo(f"replaying the same signatures is refused: {refusal}")
        r.check("a replayed settlement is refused", 1, 1)
    else:
        echo("replaying the same signatures would go through (this must not happen)")
        r.check("a replayed settlement is refused", 1, 0)

    # 4. the idle provider's deadline passes
    chain.mine(deltatime=3_700)
    tx = market.expireJob(defaulted_job, records.get(defaulted_job).record(), sender=treasury)
    defaulted = tx.events.filter(market.JobDefaulted)[0].event_arguments
    echo(
        f"job {defaulted_job} not delivered by its deadline: anyone expired it; client got "
        f"{format_ntk(int(defaulted['refundNtk']))}, "
        f"{format_ntk(int(defaulted['burnedNtk']))} burned"
    )

    # 5. withdrawals and the accounting identity
    earned = int(market.getProvider(honest).earnedNtk)
    market.withdrawEarnings(sender=honest)
    fees = int(market.feesNtk())
    market.withdrawFees(treasury, sender=owner)
    echo(
        f"provider withdrew {format_ntk(earned)} of earnings; the owner sent "
        f"{format_ntk(fees)} of fees to the treasury"
    )
    stake = sum(
        int(market.getProvider(p).stakeNtk) + int(market.getProvider(p).unbondingNtk)
        for p in (honest, idle)
    )
    balance = int(token.balanceOf(market))
    r.check("market balance = stakes (no open job, earnings or fees left)", stake, balance)
    lives = {job_id: _transactions(market, e.market_block, job_id)
             for job_id in (paid_job, rejected_job)}  # fmt: skip
    echo(
        f"job {paid_job} (quoted) took {lives[paid_job]} transactions: post, submit, settle; "
        f"job {rejected_job} took {lives[rejected_job]}: post, accept, submit, settle"
    )
    r.check(f"job {paid_job} (quoted) took 3 transactions: post, submit, settle",
            3, lives[paid_job])  # fmt: skip
    r.check(f"job {paid_job} took one transaction fewer than job {rejected_job}",
            lives[rejected_job] - 1, lives[paid_job])  # fmt: skip
    r.figures.update(
        paid_job=paid_job,
        rejected_job=rejected_job,
        defaulted_job=defaulted_job,
        earned_ntk=earned,
        fees_ntk=fees,
        burned_ntk=supply_before_market - int(token.totalSupply()),
    )
    echo(
        f"market holds {format_ntk(balance)} = the providers' remaining stake "
        "(no open jobs, earnings or fees left)"
    )
    return DemoResult(market.address, paid_job, rejected_job, defaulted_job, earned, fees)


def _transactions(market: Any, from_block: int, job_id: int) -> int:
    """How many transactions job `job_id`'s life took: those that emitted its record events."""
    head = int(market.provider.get_block("latest").number) + 1
    hashes = {
        str(log.transaction_hash)
        for name in RECORD_EVENTS
        for log in getattr(market, name).range(from_block, head, search_topics={"jobId": job_id})
    }
    return len(hashes)

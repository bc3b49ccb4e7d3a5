"""The agent end to end: a posted job accepted, computed, proven, submitted, verified by an
oracle-style check of the challenged shards over HTTP, settled by 2-of-3 test-key verdicts,
and reported in the earnings; then restarts at every awkward moment."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from neurotoken.jobs import parse_spec
from neurotoken.market.states import JobState
from neurotoken.proofs import Commitment, HttpSource, LocalStore, verify_job
from neurotoken.proofs.access import BundleAccess
from neurotoken.proofs.results import ResultError, fetch_result
from neurotoken.provider import account as acct
from neurotoken.provider.agent import ProviderAgent, StepReport
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.earnings import collect_earnings
from neurotoken.provider.readers import agent_gate
from neurotoken.provider.server import BundleServer, make_app
from neurotoken.provider.state import JobStatus
from neurotoken.units import NTK
from tests.agent.conftest import Jobs, spec_bytes
from tests.constants import AGENT_PAYMENT, AGENT_SHARDS, COLLATERAL, FEE_BPS, MAX_UINT256, STAKE

AgentFactory = Callable[..., ProviderAgent]


class CrashError(Exception):
    """Stands in for a kill -9 in the middle of the work."""


def events(market: Any, name: str, job_id: int) -> list[Any]:
    """The `name` logs of `job_id`, read through ape (not through the agent's client)."""
    stop = market.chain_manager.blocks.height + 1
    return list(getattr(market, name).range(0, stop, search_topics={"jobId": job_id}))


def test_job__accepted_computed_submitted_settled_and_reported(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory, stranger: Any,
    tmp_path: Any,
) -> None:  # fmt: skip
    acct.register(farm, STAKE)
    store_dir = tmp_path / "bundles"
    gate = agent_gate(tmp_path / "state", farm)  # as `agent run` serves: to readers only
    with BundleServer(make_app(LocalStore(store_dir), gate)) as server:
        agent = make_agent(bundle_uri=server.url)
        job_id = jobs.post()
        report = agent.step()

        assert report.posted == [job_id] and report.accepted == [job_id]
        assert report.submitted == [job_id]
        assert sorted(report.computed[job_id].computed) == list(range(AGENT_SHARDS))
        job = farm.get_job(job_id)
        assert job.state is JobState.SUBMITTED and job.provider == farm.address
        record = agent.state.get(job_id)
        assert record is not None and record.status is JobStatus.SUBMITTED
        assert record.root == "0x" + job.result_root.hex()
        submitted = events(market, "ResultSubmitted", job_id)
        assert len(submitted) == 1 and submitted[0].bundleURI == server.url
        assert farm.get_provider().stake_ntk == STAKE - COLLATERAL

        # What an oracle does: read the challenge from chain, fetch from the bundle URI with a
        # token of its own, re-run.
        jobs.chain.mine(2)
        seed = jobs.seed(job_id)
        spec = parse_spec(spec_bytes())
        commitment = Commitment(job_id, job.spec_hash, job.shard_count, job.result_root)
        access = BundleAccess.sign(
            jobs.oracles[0].private_key, farm.chain_id, farm.market_address, job.result_root
        )
        source = HttpSource(server.url, access=access)
        verdict = verify_job(spec, commitment, seed, job.challenge_count, source)
        assert verdict.accepted, verdict.summary()
        assert list(verdict.challenged) == list(market.challengedShards(job_id, job.record()))

    jobs.settle(job_id, True, sender=stranger)
    report = agent.step()
    assert report.settled == {job_id: JobStatus.PAID}
    fee = AGENT_PAYMENT * FEE_BPS // 10_000
    earned = collect_earnings(farm)
    assert [(j.job_id, j.outcome) for j in earned.jobs] == [(job_id, "paid")]
    assert (earned.gross_ntk, earned.fees_ntk, earned.net_ntk) == (
        AGENT_PAYMENT,
        fee,
        AGENT_PAYMENT - fee,
    )
    assert earned.slashed_ntk == 0 and earned.staked_ntk == STAKE
    assert earned.account is not None and earned.account.earned_ntk == AGENT_PAYMENT - fee
    assert earned.account.stake_ntk == STAKE  # collateral back
    text = "\n".join(earned.lines())
    assert "jobs: 1 paid, 0 rejected, 0 defaulted, 0 lapsed, 0 open" in text
    assert "gross paid by clients 80 NTK; protocol fees 2 NTK; net earned 78 NTK" in text

    before = farm.ntk_balance()
    acct.withdraw_earnings(farm)
    assert farm.ntk_balance() == before + AGENT_PAYMENT - fee
    assert collect_earnings(farm).withdrawn_ntk == AGENT_PAYMENT - fee


def test_bundle_server__serves_each_result_to_its_client_and_oracles_only(
    farm: MarketClient, market: Any, token: Any, minter: Any, jobs: Jobs,
    make_agent: AgentFactory, stranger: Any, client2: Any, tmp_path: Any,
) -> None:  # fmt: skip
    """The agent's gate, on the chain: the client of each job and the job's oracles read its
    result; a stranger, an account that is no oracle of the job and the client of another
    job get nothing."""
    acct.register(farm, STAKE)
    token.mint(client2, 10_000 * NTK, sender=minter)
    token.approve(market, MAX_UINT256, sender=client2)
    other_client = replace(jobs, client=client2)
    gate = agent_gate(tmp_path / "state", farm)
    with BundleServer(make_app(LocalStore(tmp_path / "bundles"), gate)) as server:
        agent = make_agent(bundle_uri=server.url)
        mine = jobs.post()
        theirs = other_client.post(spec_bytes(seed=8))
        assert sorted(agent.step().submitted) == [mine, theirs]
        root = farm.get_job(mine).result_root
        assert farm.get_job(theirs).result_root != root

        def fetch(who: Any, folder: str) -> int:
            result = fetch_result(
                server.url, root, who.private_key, farm.chain_id, farm.market_address,
                tmp_path / folder,
            )  # fmt: skip
            return len(result.shards)

        assert fetch(jobs.client, "client") == AGENT_SHARDS
        assert fetch(jobs.oracles[2], "oracle") == AGENT_SHARDS
        for who in (stranger, client2):  # no oracle; the client of the other job
            with pytest.raises(ResultError, match="403"):
                fetch(who, "refused")
        assert not (tmp_path / "refused").exists()


def test_bundle_server__an_oracle_of_another_epoch__is_refused(
    farm: MarketClient, market: Any, owner: Any, jobs: Jobs, make_agent: AgentFactory,
    stranger: Any, tmp_path: Any,
) -> None:  # fmt: skip
    """Only the oracles of the epoch a job was posted in settle it, so only they read its
    bundle: an oracle added later (a hostile one, say) is refused the older job's result
    while reading the newer one's, and an oracle removed after a job was posted still reads
    that job's (it may still have to judge it)."""
    acct.register(farm, STAKE)
    gate = agent_gate(tmp_path / "state", farm)
    with BundleServer(make_app(LocalStore(tmp_path / "bundles"), gate)) as server:
        agent = make_agent(bundle_uri=server.url)
        old = jobs.post()
        retired = jobs.oracles[2]
        market.updateOracles([stranger], [retired], 2, sender=owner)  # a new oracle epoch
        new = jobs.post(spec_bytes(seed=8))
        assert sorted(agent.step().submitted) == [old, new]
        old_job, new_job = farm.get_job(old), farm.get_job(new)
        assert new_job.oracle_epoch == old_job.oracle_epoch + 1
        assert old_job.result_root != new_job.result_root

        def fetch(who: Any, job: Any, folder: str) -> int:
            result = fetch_result(
                server.url, job.result_root, who.private_key, farm.chain_id,
                farm.market_address, tmp_path / folder,
            )  # fmt: skip
            return len(result.shards)

        with pytest.raises(ResultError, match="403"):
            fetch(stranger, old_job, "refused")  # an oracle, but not of the job's epoch
        assert not (tmp_path / "refused").exists()
        assert fetch(stranger, new_job, "newcomer") == AGENT_SHARDS
        assert fetch(retired, old_job, "retired") == AGENT_SHARDS
        with pytest.raises(ResultError, match="403"):
            fetch(retired, new_job, "refused-retired")
        assert fetch(jobs.oracles[0], old_job, "o-old") == AGENT_SHARDS
        assert fetch(jobs.oracles[0], new_job, "o-new") == AGENT_SHARDS


def test_rejected_job__is_reported_as_slashed(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory, stranger: Any
) -> None:
    acct.register(farm, STAKE)
    agent = make_agent()
    job_id = jobs.post()
    agent.step()
    jobs.settle(job_id, False, sender=stranger)
    assert agent.step().settled == {job_id: JobStatus.REJECTED}
    earned = collect_earnings(farm)
    assert [(j.job_id, j.outcome, j.slashed_ntk) for j in earned.jobs] == [
        (job_id, "rejected", COLLATERAL)
    ]
    assert earned.net_ntk == 0 and earned.account is not None
    assert earned.account.stake_ntk == STAKE - COLLATERAL


def test_restart__mid_compute__neither_accepts_again_nor_recomputes(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    finished: list[int] = []

    def crash_after_three(job: int, index: int) -> None:
        assert job == job_id
        finished.append(index)
        if len(finished) == 3:
            raise CrashError

    job_id = jobs.post()
    first = make_agent(on_shard=crash_after_three)
    with pytest.raises(CrashError):
        first.step()
    record = first.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    first.close()

    again = make_agent()  # same state and store folders: the same installation, restarted
    report = again.step()
    assert report.accepted == [] and report.submitted == [job_id]
    assert sorted(report.computed[job_id].reused) == sorted(finished)
    assert sorted(report.computed[job_id].computed) == sorted(
        set(range(AGENT_SHARDS)) - set(finished)
    )
    assert len(events(market, "JobAccepted", job_id)) == 1
    assert again.step().submitted == []
    assert len(events(market, "ResultSubmitted", job_id)) == 1


def test_restart__after_computing_before_submitting__submits_once_without_recomputing(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    first = make_agent()
    first_report = StepReport()
    first.scan()
    first.decide(first_report)
    job = farm.get_job(job_id)
    record = first.state.get(job_id)
    assert record is not None
    first.compute(job, record, first_report)  # then the process dies before submitting
    first.close()

    again = make_agent()
    report = again.step()
    assert report.computed == {} and report.submitted == [job_id]
    assert len(events(market, "ResultSubmitted", job_id)) == 1


def test_restart__accept_sent_but_not_recorded__is_found_on_chain_not_resent(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    tx = farm.transact(farm.market.functions.acceptJob(job_id, jobs.rec(job_id)), "accept")
    first = make_agent()
    first.scan()
    tx_hash = "0x" + bytes(tx["transactionHash"]).hex()
    first.state.update(job_id, status=JobStatus.ACCEPTING, accept_tx=tx_hash)  # crash point
    first.close()

    farm_address = to_checksum_address(farm.address)
    nonce = farm.w3.eth.get_transaction_count(farm_address)
    again = make_agent()
    report = StepReport()
    again.reconcile(report)
    record = again.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    assert farm.w3.eth.get_transaction_count(farm_address) == nonce  # nothing sent
    assert report.accepted == []
    assert again.step().submitted == [job_id]
    assert len(events(market, "JobAccepted", job_id)) == 1


def test_restart__an_unrecorded_accept_lands_while_the_job_is_undecided__is_held_not_gone(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    """An attempt whose hash the state file lost (a replacement recorded over it that the node
    never took) lands after the job went back to be decided: the job is ours, not gone."""
    acct.register(farm, STAKE)
    job_id = jobs.post()
    agent = make_agent()
    agent.scan()
    farm.transact(farm.market.functions.acceptJob(job_id, jobs.rec(job_id)), "acceptJob")
    report = StepReport()
    agent.decide(report)
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.ACCEPTED
    assert report.accepted == [] and report.decisions == []
    assert agent.step().submitted == [job_id]
    assert len(events(market, "JobAccepted", job_id)) == 1


def test_restart__accept_signed_but_never_broadcast__is_decided_again_and_accepted_once(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    first = make_agent()
    first.scan()
    first.state.update(job_id, status=JobStatus.ACCEPTING, accept_tx="0x" + "ab" * 32)
    first.close()

    report = make_agent().step()
    assert report.accepted == [job_id] and report.submitted == [job_id]
    assert len(events(market, "JobAccepted", job_id)) == 1


def test_restart__submit_sent_but_not_recorded__is_not_resent(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    first = make_agent()
    first.step()
    record = first.state.get(job_id)
    assert record is not None and record.status is JobStatus.SUBMITTED
    first.state.update(job_id, status=JobStatus.SUBMITTING)  # as if killed before recording
    first.close()

    report = make_agent().step()
    assert report.submitted == [] and report.computed == {}
    assert len(events(market, "ResultSubmitted", job_id)) == 1


def test_two_jobs__best_paying_first__and_stake_bounds_how_many_are_taken(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, COLLATERAL)  # stake for one job's collateral only
    cheap = jobs.post(paymentNtk=40 * NTK)
    rich = jobs.post(spec_bytes(seed=8), paymentNtk=120 * NTK)
    agent = make_agent()
    report = agent.step()
    assert report.accepted == [rich]
    record = agent.state.get(cheap)
    assert record is not None and record.status is JobStatus.DEFERRED
    assert record.reason is not None and record.reason.startswith("STAKE_TOO_LOW")


def test_job_taken_by_another_provider__is_marked_gone(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory, provider2: Any
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    agent = make_agent()
    agent.scan()
    market.registerProvider(STAKE, "", sender=provider2)
    market.acceptJob(job_id, jobs.rec(job_id), sender=provider2)
    report = agent.step()
    assert report.accepted == []
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.GONE


@pytest.mark.parametrize("when", ["before_it_is_signed", "after_it_is_broadcast"])
def test_job_taken_between_reading_its_record_and_sending__is_given_up_once(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory, provider2: Any,
    monkeypatch: pytest.MonkeyPatch, when: str,
) -> None:  # fmt: skip
    """acceptJob carries the record the agent read; another provider's acceptance lands in
    between, so the record is stale and the call reverts (MarketJobRecordMismatch) - at the
    gas estimate, or on chain once mined. The agent reads the job again, gives it up with a
    log line saying who took it, and never sends for it again."""
    acct.register(farm, STAKE)
    market.registerProvider(STAKE, "", sender=provider2)
    job_id = jobs.post()
    lines: list[str] = []
    agent = make_agent(echo=lines.append)
    broadcasts: list[bytes] = []
    send_raw = farm.w3.eth.send_raw_transaction
    transact = farm.transact

    def rival_first() -> None:
        market.acceptJob(job_id, jobs.rec(job_id), sender=provider2)

    def racing_transact(fn: Any, action: str, on_sent: Any = None) -> Any:
        if when == "before_it_is_signed":
            rival_first()
        return transact(fn, action, on_sent)

    def racing_send(raw: Any) -> Any:
        broadcasts.append(bytes(raw))
        if when == "after_it_is_broadcast":
            rival_first()
        return send_raw(raw)

    monkeypatch.setattr(farm, "transact", racing_transact)
    monkeypatch.setattr(farm.w3.eth, "send_raw_transaction", racing_send)
    report = agent.step()

    assert report.accepted == [] and report.submitted == [] and report.computed == {}
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.GONE
    assert record.accept_tx is None
    assert record.reason is not None
    assert record.reason.startswith(f"taken by {provider2.address}: acceptJob({job_id}) reverted")
    assert "MarketJobRecordMismatch" in record.reason
    (given_up,) = [line for line in lines if "giving it up" in line]
    assert given_up.startswith(f"job {job_id}: giving it up - taken by {provider2.address} ")
    assert "MarketJobRecordMismatch" in given_up
    assert len(broadcasts) == (0 if when == "before_it_is_signed" else 1)
    (accepted,) = events(market, "JobAccepted", job_id)
    assert accepted.event_arguments["provider"] == provider2.address
    assert farm.get_provider().stake_ntk == STAKE  # no collateral locked

    again = agent.step()  # nothing more is sent for it
    assert again.accepted == [] and again.decisions == []
    assert len(broadcasts) == (0 if when == "before_it_is_signed" else 1)


def test_job_reserved_for_this_provider_cancelled_while_deciding__is_given_up_not_held(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A posted job's record names the provider it is reserved for: that is not holding it.
    The client cancels such a job after the policy said yes; the record read right before
    sending shows it, and the agent gives the job up without signing anything."""
    acct.register(farm, STAKE)
    job_id = jobs.post(provider=farm.address)
    lines: list[str] = []
    agent = make_agent(echo=lines.append)
    evaluate = agent.evaluate

    def then_cancelled(jid: int) -> Any:
        decided = evaluate(jid)
        market.cancelJob(jid, jobs.rec(jid), sender=jobs.client)
        return decided

    monkeypatch.setattr(agent, "evaluate", then_cancelled)
    farm_address = to_checksum_address(farm.address)
    nonce = farm.w3.eth.get_transaction_count(farm_address)
    report = agent.step()

    assert [d.accept for d in report.decisions] == [True] and report.accepted == []
    assert farm.w3.eth.get_transaction_count(farm_address) == nonce  # nothing signed
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.GONE
    assert f"job {job_id}: giving it up - cancelled on chain before this provider's " in (
        "\n".join(lines)
    )
    assert farm.get_job(job_id).state is JobState.CANCELLED
    assert agent.step().decisions == []


def test_job_defaulted_between_reading_its_record_and_submitting__is_recorded_not_resent(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The agent read the accepted job's record and is about to submit; the deadline passes
    and the client ends the job (expireJob: defaulted) first. submitResult reverts (the job
    is gone), the agent reads it again and records the default, without sending again."""
    acct.register(farm, STAKE)
    job_id = jobs.post()
    lines: list[str] = []
    agent = make_agent(echo=lines.append)
    transact = farm.transact
    actions: list[str] = []

    def late(fn: Any, action: str, on_sent: Any = None) -> Any:
        actions.append(action)
        if action.startswith("submitResult"):
            jobs.chain.mine(deltatime=7200 + 1)  # past deliverBy, even within the second
            market.expireJob(job_id, jobs.rec(job_id), sender=jobs.client)
        return transact(fn, action, on_sent)

    monkeypatch.setattr(farm, "transact", late)
    report = agent.step()

    assert report.accepted == [job_id] and report.submitted == []
    assert report.settled == {job_id: JobStatus.DEFAULTED}
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.DEFAULTED
    assert actions == [f"acceptJob({job_id})", f"submitResult({job_id})"]
    assert any(
        f"job {job_id}: submit failed" in line and "MarketJobNotFound" in line for line in lines
    )
    assert events(market, "ResultSubmitted", job_id) == []
    assert len(events(market, "JobDefaulted", job_id)) == 1
    assert agent.step().submitted == [] and len(actions) == 2


def test_restart__accept_recorded_but_the_job_taken_meanwhile__is_given_up(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory, provider2: Any
) -> None:
    """A restart finds an accept of its own in the state file that never reached the node,
    while another provider took the job: the job is read again and given up, nothing sent."""
    acct.register(farm, STAKE)
    job_id = jobs.post()
    first = make_agent()
    first.scan()
    first.state.update(job_id, status=JobStatus.ACCEPTING, accept_tx="0x" + "ab" * 32)
    first.close()
    market.registerProvider(STAKE, "", sender=provider2)
    market.acceptJob(job_id, jobs.rec(job_id), sender=provider2)

    farm_address = to_checksum_address(farm.address)
    nonce = farm.w3.eth.get_transaction_count(farm_address)
    lines: list[str] = []
    again = make_agent(echo=lines.append)
    report = again.step()
    assert report.accepted == [] and report.decisions == []
    assert farm.w3.eth.get_transaction_count(farm_address) == nonce
    record = again.state.get(job_id)
    assert record is not None and record.status is JobStatus.GONE
    assert record.reason == f"taken by {provider2.address}"
    gave_up = f"job {job_id}: giving it up - taken by {provider2.address} (found after a restart)"
    assert gave_up in lines


def test_restart__with_a_later_from_block__still_reads_the_jobs_it_knows(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    """Job records are rebuilt from events searched for from the block the first run began
    scanning at: a restart given a --from-block past a known job's posting (the option is
    meant for the first run only) still reads it."""
    acct.register(farm, STAKE)
    start = farm.head()
    job_id = jobs.post()
    first = make_agent(from_block=start)
    assert first.scan() == [job_id]
    first.close()

    again = make_agent(from_block=farm.head() + 1)
    assert again.first_block == start
    assert again.step().submitted == [job_id]


def test_run__survives_a_failing_step_and_stops_after_too_many(
    farm: MarketClient, jobs: Jobs, make_agent: AgentFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    agent = make_agent()
    real_scan = agent.scan
    calls: list[int] = []

    def flaky_scan() -> list[int]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("node restarting")
        return real_scan()

    monkeypatch.setattr(agent, "scan", flaky_scan)
    agent.run(poll_s=0.0, max_steps=2)
    record = agent.state.get(job_id)
    assert record is not None and record.status is JobStatus.SUBMITTED

    monkeypatch.setattr(agent, "scan", lambda: (_ for _ in ()).throw(ConnectionError("down")))
    with pytest.raises(ConnectionError):
        agent.run(poll_s=0.0, max_steps=5, max_failures=3)


def test_restart__submit_signed_but_never_broadcast__submits_once(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    first = make_agent()
    report = StepReport()
    first.scan()
    first.decide(report)
    record = first.state.get(job_id)
    assert record is not None
    record = first.compute(farm.get_job(job_id), record, report)
    first.state.update(job_id, status=JobStatus.SUBMITTING, submit_tx="0x" + "cd" * 32)
    first.close()

    again = make_agent().step()
    assert again.computed == {} and again.submitted == [job_id]
    assert len(events(market, "ResultSubmitted", job_id)) == 1
    assert "0x" + farm.get_job(job_id).result_root.hex() == record.root


def test_restart__with_the_bundle_store_lost__recomputes_before_submitting(
    farm: MarketClient, market: Any, jobs: Jobs, make_agent: AgentFactory, tmp_path: Any
) -> None:
    acct.register(farm, STAKE)
    job_id = jobs.post()
    first = make_agent()
    report = StepReport()
    first.scan()
    first.decide(report)
    record = first.state.get(job_id)
    assert record is not None
    record = first.compute(farm.get_job(job_id), record, report)
    first.close()
    shutil.rmtree(tmp_path / "bundles")  # a disk replaced: the oracles could fetch nothing

    again = make_agent().step()
    assert sorted(again.computed[job_id].computed) == list(range(AGENT_SHARDS))
    assert again.submitted == [job_id]
    assert "0x" + farm.get_job(job_id).result_root.hex() == record.root

"""What the agent refuses, and why: policy rules against posted jobs on chain, spec URIs and
hashes, and the pure policy arithmetic."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from neurotoken.jobs import (
    MAX_CHALLENGES,
    MAX_RESULT_BYTES,
    canonical_json,
    keccak256,
    max_shard_bytes,
    parse_spec,
    spec_json,
)
from neurotoken.jobs.spec import FLOAT32_UNPAYABLE
from neurotoken.market.job import OnChainJob
from neurotoken.market.states import JobState
from neurotoken.provider import account as acct
from neurotoken.provider.agent import ProviderAgent
from neurotoken.provider.chain import MarketClient
from neurotoken.provider.policy import (
    Capacity,
    Policy,
    estimate_seconds,
    evaluate,
    load_policy,
    net_price_per_shard,
)
from neurotoken.provider.spec_fetch import Refusal
from neurotoken.provider.state import JobStatus
from neurotoken.units import NTK
from tests.agent.conftest import Jobs, spec_bytes, spec_dict
from tests.constants import AGENT_PAYMENT, AGENT_SHARDS, COLLATERAL, STAKE, ZERO_ADDRESS

AgentFactory = Callable[..., ProviderAgent]


def refusal(agent: ProviderAgent, job_id: int) -> tuple[JobStatus, str]:
    agent.step()
    record = agent.state.get(job_id)
    assert record is not None and record.reason is not None
    return record.status, record.reason


@pytest.fixture
def registered(farm: MarketClient) -> MarketClient:
    acct.register(farm, STAKE)
    return farm


def test_price_below_minimum__is_refused(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post()  # 80 NTK for 8 shards, 2.5% fee: 9.75 NTK net per shard
    agent = make_agent(Policy(min_price_per_shard_ntk=10 * NTK))
    status, reason = refusal(agent, job_id)
    assert status is JobStatus.REFUSED
    assert reason == ("PRICE_TOO_LOW: 9.75 NTK per shard after the 2.5% fee < minimum 10 NTK")
    assert registered.get_job(job_id).state is JobState.POSTED


def test_price_at_minimum__is_accepted(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post()
    agent = make_agent(Policy(min_price_per_shard_ntk=9_750 * NTK // 1000))
    assert agent.step().accepted == [job_id]


def test_unknown_kind__is_refused_naming_the_kind(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    raw = canonical_json(dict(spec_dict(), kind="protein-folding"))
    job_id = jobs.post(raw)
    status, reason = refusal(make_agent(), job_id)
    assert status is JobStatus.REFUSED
    assert reason.startswith("KIND_UNKNOWN: job spec field 'kind': unknown kind 'protein-folding'")


def test_kind_not_offered__is_refused(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post()
    agent = make_agent(Policy(kinds=frozenset({"classifier-training"})))
    status, reason = refusal(agent, job_id)
    assert status is JobStatus.REFUSED
    assert reason == "KIND_NOT_OFFERED: kind 'shelf-images' (offered: classifier-training)"


def test_spec_hash_mismatch__is_refused_with_both_hashes(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    posted_hash = keccak256(b"some other spec")
    job_id = jobs.post(spec_hash=posted_hash)
    status, reason = refusal(make_agent(), job_id)
    assert status is JobStatus.REFUSED
    assert reason.startswith("SPEC_HASH_MISMATCH: the spec at ")
    assert f"hashes to 0x{keccak256(spec_bytes()).hex()}" in reason
    assert reason.endswith(f"posted with spec hash 0x{posted_hash.hex()}")


def test_non_canonical_spec_bytes__do_not_match_the_canonical_hash(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    raw = spec_bytes()
    pretty = raw.replace(b",", b", ")  # same spec, other bytes: oracles would refuse it too
    job_id = jobs.post(raw, spec_uri=str(jobs.write_spec(pretty, "pretty")))
    status, reason = refusal(make_agent(), job_id)
    assert status is JobStatus.REFUSED and reason.startswith("SPEC_HASH_MISMATCH")


def test_missing_spec_file__is_deferred_then_refused_after_the_attempts(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory, tmp_path: Path
) -> None:
    job_id = jobs.post(spec_uri=str(tmp_path / "nowhere.json"))
    agent = make_agent(max_spec_attempts=2)
    status, reason = refusal(agent, job_id)
    assert status is JobStatus.DEFERRED
    assert reason.startswith("SPEC_UNAVAILABLE: ") and "nowhere.json" in reason
    status, _ = refusal(agent, job_id)
    assert status is JobStatus.REFUSED


def test_unsupported_spec_uri__is_refused(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post(spec_uri="ipfs://bafy-spec")
    status, reason = refusal(make_agent(), job_id)
    assert (status, reason) == (
        JobStatus.REFUSED,
        "SPEC_URI_UNSUPPORTED: unsupported scheme 'ipfs'",
    )


def test_spec_shard_count_differs_from_the_job__is_refused(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post(spec_bytes(shard_count=AGENT_SHARDS * 2))
    status, reason = refusal(make_agent(), job_id)
    assert (status, reason) == (
        JobStatus.REFUSED,
        f"SHARD_COUNT_MISMATCH: the spec has {AGENT_SHARDS * 2} shards, "
        f"the job on chain {AGENT_SHARDS}",
    )


def test_float32_training_job__is_refused_as_unpayable(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    """Oracles reject float32 training (its tolerance can be walked under), so a provider that
    took the job would be slashed however honest its work: the agent does not take it."""
    raw = spec_json(parse_spec(training_spec_dict("float32")))
    job_id = jobs.post(raw)
    status, reason = refusal(make_agent(), job_id)
    assert status is JobStatus.REFUSED
    assert reason == f"SPEC_UNPAYABLE: {FLOAT32_UNPAYABLE}"
    assert registered.get_job(job_id).state is JobState.POSTED


def test_fixed_point_training_job__is_accepted(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post(spec_json(parse_spec(training_spec_dict("fixed-point"))))
    assert make_agent().step().accepted == [job_id]


def test_job_reserved_for_another_provider__is_refused(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory, provider2: Any
) -> None:
    job_id = jobs.post(provider=provider2.address)
    status, reason = refusal(make_agent(), job_id)
    assert (status, reason) == (
        JobStatus.REFUSED,
        f"RESERVED_FOR_OTHER: posted for {provider2.address}",
    )


def test_too_many_shards_and_too_much_collateral__are_both_reported(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post()
    agent = make_agent(Policy(max_shards=4, max_collateral_ntk=COLLATERAL - 1))
    status, reason = refusal(agent, job_id)
    assert status is JobStatus.REFUSED
    assert reason.startswith("TOO_MANY_SHARDS: 8 shards > max 4; COLLATERAL_TOO_HIGH: collateral")


def test_job_reserved_for_this_provider__is_accepted(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    job_id = jobs.post(provider=registered.address)
    assert make_agent().step().accepted == [job_id]


@pytest.fixture
def http_specs(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_spec_over_http__is_fetched_checked_and_accepted(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory,
    http_specs: tuple[Path, str],
) -> None:  # fmt: skip
    folder, base = http_specs
    (folder / "job.json").write_bytes(spec_bytes())
    job_id = jobs.post(spec_uri=f"{base}/job.json")
    assert make_agent().step().submitted == [job_id]


def test_spec_over_http__404__is_deferred(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory,
    http_specs: tuple[Path, str],
) -> None:  # fmt: skip
    _, base = http_specs
    job_id = jobs.post(spec_uri=f"{base}/missing.json")
    status, reason = refusal(make_agent(), job_id)
    assert status is JobStatus.DEFERRED and reason.endswith("missing.json: HTTP 404")


def test_spec_as_data_uri__is_accepted(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    uri = "data:application/json;base64," + base64.b64encode(spec_bytes()).decode()
    job_id = jobs.post(spec_uri=uri)
    assert make_agent().step().accepted == [job_id]


# ---------------------------------------------------------------------- pure policy


def offer(**overrides: Any) -> OnChainJob:
    fields: dict[str, Any] = {
        "job_id": 1, "client": "0x" + "11" * 20, "payment_ntk": AGENT_PAYMENT,
        "provider": ZERO_ADDRESS, "collateral_ntk": COLLATERAL, "spec_hash": b"\x01" * 32,
        "result_root": bytes(32), "state": JobState.POSTED, "accept_by": 1_000,
        "deliver_by": 10_000, "verdict_by": 20_000, "seed_block": 0, "shard_count": AGENT_SHARDS,
        "challenge_count": 4, "fee_bps": 250,
    }  # fmt: skip
    fields.update(overrides)
    return OnChainJob(**fields)


SPEC = parse_spec(spec_dict())
ME = "0x" + "22" * 20


def training_spec_dict(arithmetic: str) -> dict[str, Any]:
    return {
        "kind": "classifier-training", "version": 1, "seed": 3, "scene": spec_dict()["scene"],
        "images_per_segment": 1, "crop_size": 6, "hidden_units": 8, "batch_size": 4,
        "steps_per_segment": 2, "learning_rate_ppm": 100_000, "arithmetic": arithmetic,
        "shard_count": AGENT_SHARDS,
    }  # fmt: skip


def test_evaluate__deadline_too_soon_counts_queued_work() -> None:
    policy = Policy(deadline_margin_s=100, safety_factor=1.0)
    alone = evaluate(offer(deliver_by=1_000), SPEC, policy, Capacity(ME, STAKE), now=800)
    assert alone.accept
    busy = Capacity(ME, STAKE, active_jobs=1, queued_seconds=150.0)
    late = evaluate(offer(deliver_by=1_000), SPEC, policy, busy, now=800)
    assert late.code is Refusal.DEADLINE_TOO_SOON
    assert "deliverBy is 200 s away" in late.summary()


def test_evaluate__after_accept_by__is_refused() -> None:
    decision = evaluate(offer(accept_by=99), SPEC, Policy(), Capacity(ME, STAKE), now=100)
    assert decision.code is Refusal.ACCEPT_WINDOW_CLOSED


def test_evaluate__stake_below_collateral_and_busy__are_transient_reasons() -> None:
    capacity = Capacity(ME, COLLATERAL - 1, active_jobs=1)
    decision = evaluate(offer(), SPEC, Policy(max_active_jobs=1), capacity, now=0)
    assert [code for code, _ in decision.reasons] == [Refusal.STAKE_TOO_LOW, Refusal.BUSY]


def test_evaluate__float32_training__is_refused_by_the_oracles_own_check() -> None:
    policy, capacity = Policy(), Capacity(ME, STAKE)
    fixed = evaluate(offer(), parse_spec(training_spec_dict("fixed-point")), policy, capacity, 0)
    assert fixed.accept, fixed.summary()
    decision = evaluate(offer(), parse_spec(training_spec_dict("float32")), policy, capacity, 0)
    assert decision.reasons == ((Refusal.SPEC_UNPAYABLE, FLOAT32_UNPAYABLE),)


def test_evaluate__result_too_large_for_oracles_to_download__is_refused() -> None:
    big = {**spec_dict()["scene"], "width": 1024, "height": 1024}
    fits = MAX_RESULT_BYTES // max_shard_bytes(parse_spec(spec_dict(scene=big)))
    policy, capacity = Policy(max_shards=1 << 16), Capacity(ME, STAKE)
    for shards, accept in ((fits, True), (fits + 1, False)):
        spec = parse_spec(spec_dict(scene=big, shard_count=shards))
        decision = evaluate(offer(shard_count=shards, deliver_by=10**9), spec, policy, capacity, 0)
        assert decision.accept is accept, decision.summary()
    assert decision.code is Refusal.SPEC_UNPAYABLE
    assert f"over the {MAX_RESULT_BYTES} an oracle downloads" in decision.summary()


@pytest.mark.parametrize("k", [0, AGENT_SHARDS + 1])
def test_evaluate__challenge_count_outside_1_to_shards__is_refused(k: int) -> None:
    decision = evaluate(offer(challenge_count=k), SPEC, Policy(), Capacity(ME, STAKE), now=0)
    assert decision.reasons == (
        (
            Refusal.SPEC_UNPAYABLE,
            f"{k} challenged shards: a job of {AGENT_SHARDS} shards needs 1 to 8",
        ),
    )
    assert AGENT_SHARDS < MAX_CHALLENGES


def test_net_price_per_shard__is_after_the_jobs_own_fee() -> None:
    assert net_price_per_shard(offer(payment_ntk=100 * NTK, fee_bps=1_000, shard_count=9)) == (
        10 * NTK
    )


def test_estimate_seconds__scales_with_pixels_and_workers() -> None:
    policy = Policy(shelf_mpixels_per_s_per_core=1.0)
    one = estimate_seconds(SPEC, policy, workers=1)
    assert one == pytest.approx(AGENT_SHARDS * 64 * 48 / 1e6)
    assert estimate_seconds(SPEC, policy, workers=4) == pytest.approx(one / 4)


def test_load_policy__names_a_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"min_price_per_shard_ntk": -1}')
    with pytest.raises(Exception, match="field 'min_price_per_shard_ntk'"):
        load_policy(path)
    path.write_text('{"kinds": ["shelf-images"], "max_shards": 64}')
    assert load_policy(path) == Policy(kinds=frozenset({"shelf-images"}), max_shards=64)


def test_load_policy__unknown_kind__is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"kinds": ["shelf-images", "mining"]}')
    with pytest.raises(Exception, match=r"field 'kinds': Value error, unknown kinds \['mining'\]"):
        load_policy(path)


def test_cached_spec__is_still_checked_against_each_jobs_shard_count(
    registered: MarketClient, jobs: Jobs, make_agent: AgentFactory
) -> None:
    agent = make_agent()
    first = jobs.post()
    assert agent.step().accepted == [first]  # its spec is now in the agent's cache
    # k = 3 of 4: no minimum collateral on chain (N + 1 <= 2k), so only the spec can refuse it
    second = jobs.post(shardCount=AGENT_SHARDS // 2, challengeCount=3)
    status, reason = refusal(agent, second)
    assert status is JobStatus.REFUSED
    assert reason == f"SHARD_COUNT_MISMATCH: the spec has {AGENT_SHARDS} shards, the job on chain 4"

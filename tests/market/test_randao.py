"""Challenge seeds against the block producer (#9, finding 9): with block-hash seeds the
producer of the seed block chooses the challenge (the attack below passes a faked shard); a
market deployed with a RANDAO delay seeds each challenge with the RANDAO mix (prevRandao) of
the block `randaoDelay` after the commit, recorded in a RandaoRecorder from the block's header,
and no header but the canonical one is accepted.

Anvil draws a fresh random mix for every block it mines, so the beacon chain's part (that the
mix is fixed by the proposers' reveals, not by the block's builder) cannot be played here; what
the tests show is everything on chain: which block seeds, that the seed is that block's mix
and nothing else in its header, and that a forged header is refused."""

from __future__ import annotations

from typing import Any

import ape
import click
import pytest
import rlp
from ape.exceptions import ContractLogicError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from neurotoken.chain.headers import header_at
from tests.constants import SHARDS, ZERO_ADDRESS
from tests.helpers import deploy_market, load_script, run
from tests.market.conftest import RESULT_ROOT, Market, funded

market_cli = load_script("market")
DELAY = 4
MIX = 13
"""Index of prevRandao (mixHash) in a header's RLP list (OpenZeppelin's BlockHeader)."""
TIMESTAMP = 11


@pytest.fixture(scope="module")
def randao_market(
    project: Any,
    owner: Any,
    token: Any,
    minter: Any,
    oracles: list[Any],
    client: Any,
    provider: Any,
) -> Any:
    """A market like tests/market/conftest.py's, seeding with the RANDAO mix DELAY blocks on."""
    deployed = deploy_market(project, token, owner, oracles, randao_delay=DELAY)
    return funded(deployed, token, minter, client, provider)


@pytest.fixture
def r(randao_market: Any, chain: Any, client: Any, provider: Any, oracles: list[Any]) -> Market:
    return Market(randao_market, chain, client, provider, oracles)


@pytest.fixture
def recorder(project: Any, randao_market: Any) -> Any:
    return project.RandaoRecorder.at(randao_market.randaoRecorder())


def commit(r: Market, root: bytes = RESULT_ROOT) -> tuple[int, int, Any]:
    """A job accepted and its result committed: (job id, commit block, transaction)."""
    job_id = r.accepted()
    tx = r.contract.submitResult(
        job_id, r.rec(job_id), root, SHARDS, "ipfs://bundle", sender=r.provider
    )
    return job_id, int(tx.block_number), tx


def header(chain: Any, number: int) -> bytes:
    return header_at(chain.provider.web3, number)


def test_randao_market__seed_block_is_delay_after_the_commit(r, randao_market):
    assert randao_market.randaoDelay() == DELAY
    job_id, block, tx = commit(r)
    assert tx.events.filter(randao_market.ResultSubmitted)[0].seedBlock == block + DELAY
    assert r.job(job_id).seed_block == block + DELAY


def test_randao_seed__pending__then_unrecorded__then_the_seed_blocks_mix(
    r, randao_market, recorder, chain, oracles
):
    job_id, block, _ = commit(r)
    seed_block = block + DELAY
    with ape.reverts(randao_market.MarketChallengeSeedPending, seedBlock=seed_block):
        randao_market.challengeSeed(job_id, seed_block)
    chain.mine(DELAY)
    with ape.reverts(randao_market.MarketRandaoNotRecorded, jobId=job_id, seedBlock=seed_block):
        randao_market.challengeSeed(job_id, seed_block)
    with ape.reverts(randao_market.MarketRandaoNotRecorded):  # no verdict on an unknown seed
        randao_market.settle(job_id, r.rec(job_id), True, [b"\x00" * 65] * 2, sender=oracles[0])

    raw = header(chain, seed_block)
    mix = rlp.decode(raw)[MIX]
    tx = recorder.record(raw, sender=oracles[2])
    assert tx.events.filter(recorder.RandaoRecorded)[0].mix == mix
    assert bytes(recorder.mixOf(seed_block)) == mix
    assert bytes(randao_market.challengeSeed(job_id, seed_block)) == mix
    assert mix != bytes(chain.provider.web3.eth.get_block(seed_block)["hash"])

    settled = randao_market.settle(
        job_id, r.rec(job_id), True, r.sign(job_id, True, oracles[:2]), sender=oracles[0]
    )
    assert settled.events.filter(randao_market.JobPaid)


def test_randao_seed__a_verdict_over_the_block_hash__recovers_a_stranger(
    r, randao_market, recorder, chain, oracles
):
    job_id, block, _ = commit(r)
    chain.mine(DELAY)
    recorder.record(header(chain, block + DELAY), sender=oracles[0])
    block_hash = bytes(chain.provider.web3.eth.get_block(block + DELAY)["hash"])
    with pytest.raises(ContractLogicError) as refused:
        randao_market.settle(
            job_id,
            r.rec(job_id),
            True,
            r.sign(job_id, True, oracles[:2], seed=block_hash),
            sender=oracles[0],
        )
    # each signature recovers to a stranger (in whatever order the strangers fall)
    assert type(refused.value).__name__ in {"MarketSignerNotOracle", "MarketSignersNotAscending"}


@pytest.mark.parametrize("field", [MIX, TIMESTAMP])
def test_randao_record__altered_header__refused(recorder, chain, oracles, field):
    """A builder (or anyone) who posts the seed block's header with its own mix, or with any
    other field changed, is refused: only the header hashing to the block hash is read."""
    chain.mine(2)
    number = int(chain.blocks.head.number) - 1
    fields = rlp.decode(header(chain, number))
    fields[field] = keccak(b"chosen") if field == MIX else (int.from_bytes(fields[field]) + 1)
    with ape.reverts(recorder.RandaoBlockHeaderUnknown, blockNumber=number):
        recorder.record(rlp.encode(fields), sender=oracles[0])
    assert bytes(recorder.mixOf(number)) == b"\x00" * 32


def test_randao_record__block_not_mined__refused(recorder, chain, oracles):
    head = int(chain.blocks.head.number)
    fields = rlp.decode(header(chain, head))
    fields[8] = head + 5  # a future block: its hash reads as zero
    with ape.reverts(recorder.RandaoBlockHeaderUnknown, blockNumber=head + 5):
        recorder.record(rlp.encode(fields), sender=oracles[0])


def test_randao_record__twice__refused_with_the_mix_kept(recorder, chain, oracles):
    chain.mine(2)
    number = int(chain.blocks.head.number) - 1
    raw = header(chain, number)
    recorder.record(raw, sender=oracles[0])
    mix = rlp.decode(raw)[MIX]
    with ape.reverts(recorder.RandaoAlreadyRecorded, blockNumber=number, mix=mix):
        recorder.record(raw, sender=oracles[1])


def test_randao_record__genesis_with_zero_mix__refused_as_missing(recorder, chain, oracles):
    """Anvil's block 0 has a zero mix, as a chain without RANDAO would."""
    raw = header(chain, 0)
    assert rlp.decode(raw)[MIX] == b"\x00" * 32
    with ape.reverts(recorder.RandaoMissing, blockNumber=0):
        recorder.record(raw, sender=oracles[0])


@pytest.mark.parametrize("garbage", [b"", b"\x80", b"\xc0", b"\xff" * 40])
def test_randao_record__not_a_header__malformed(recorder, oracles, garbage):
    with ape.reverts(recorder.HeaderFieldsMalformed):
        recorder.record(garbage, sender=oracles[0])


def test_fix_challenge_seed__on_a_randao_market__refused(r, randao_market, chain, oracles):
    job_id, _, _ = commit(r)
    chain.mine(DELAY + 1)
    with ape.reverts(randao_market.MarketRandaoSeedsOn):
        randao_market.fixChallengeSeed(job_id, r.rec(job_id), sender=oracles[0])


def test_block_producer_grinds_the_seed_block__steers_a_block_hash_challenge(m, market, chain):
    """The attack on a market seeding with block hashes (`randaoDelay` 0): a provider that
    builds the seed block (emulated: it picks the block's timestamp, one of many fields a
    builder sets) tries contents until the challenge misses its faked shard. Either outcome is
    its to choose; here each try costs a hash. The RANDAO market takes the seed from the mix,
    which the block's builder does not set (the tests above: no other header is accepted)."""
    faked = 5
    job_id = m.accepted()
    m.contract.submitResult(
        job_id, m.rec(job_id), RESULT_ROOT, SHARDS, "ipfs://bundle", sender=m.provider
    )
    record = m.rec(job_id)
    start = chain.pending_timestamp
    misses, hits = 0, 0
    for offset in range(64):
        snapshot = chain.snapshot()
        chain.pending_timestamp = start + offset
        chain.mine()  # the seed block, with the builder's chosen contents
        chain.mine()
        challenged = {int(i) for i in market.challengedShards(job_id, record)}
        misses += faked not in challenged
        hits += faked in challenged
        chain.restore(snapshot)
    assert misses and hits, "the seed block's contents chose the challenge"


@pytest.mark.usefixtures("deployments_dir")
def test_fix_seed_command__on_a_randao_market__records_the_mix__then_says_nothing_to_do(
    r, randao_market, recorder, chain, stranger, capsys
):
    job_id, block, _ = commit(r)
    fix = dict(account=stranger, market_address=randao_market.address, job_id=job_id)
    with pytest.raises(click.ClickException, match=rf"seed block {block + DELAY} is not mined yet"):
        run(market_cli.fix_seed, **fix)
    chain.mine(DELAY)
    run(market_cli.status, market_address=randao_market.address, job_id=job_id)
    assert f"not drawn yet: the RANDAO mix of block {block + DELAY}" in capsys.readouterr().out
    run(market_cli.fix_seed, **fix)
    out = capsys.readouterr().out
    assert f"seed of job {job_id} recorded: the RANDAO mix of block {block + DELAY}" in out
    mix = bytes(recorder.mixOf(block + DELAY))
    assert mix == rlp.decode(header(chain, block + DELAY))[MIX]
    with pytest.raises(click.ClickException, match=rf"already recorded \(0x{mix.hex()}\)"):
        run(market_cli.fix_seed, **fix)
    chain.mine(1)
    run(market_cli.status, market_address=randao_market.address, job_id=job_id)
    assert f"challenge   seed 0x{mix.hex()}: shards" in capsys.readouterr().out


def test_randao_market__creates_its_own_recorder__no_deployer_can_name_one(
    project, token, owner, oracles, randao_market
):
    """A deployer that could name the recorder would name one serving the mixes it chooses,
    and so choose every job's challenge: the market creates its recorder in its constructor
    (the first contract it creates), and a block-hash market has none."""
    created = keccak(rlp.encode([bytes.fromhex(randao_market.address[2:]), 1]))[12:]
    assert randao_market.randaoRecorder() == to_checksum_address(created)
    receipt = randao_market.creation_metadata.receipt
    (announced,) = receipt.events.filter(randao_market.RandaoSeeds)
    assert (announced.randaoDelay, announced.recorder) == (DELAY, to_checksum_address(created))
    plain = project.ComputeMarket.deploy(token, owner, 0, 250, oracles, 2, 3_600, 0, sender=owner)
    assert plain.randaoRecorder() == ZERO_ADDRESS and plain.randaoDelay() == 0
    assert not plain.creation_metadata.receipt.events.filter(plain.RandaoSeeds)

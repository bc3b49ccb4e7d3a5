"""Which shards are challenged: k distinct indices from the challenge seed and the job id.

This mirrors, bit for bit, the derivation in the ComputeMarket contract:

    for c = 0, 1, 2, ...:
        idx = uint256(keccak256(abi.encode(bytes32 seed, uint256 jobId, uint256 c))) % shardCount
        skip idx if already drawn; stop after k distinct indices (k <= shardCount)

The seed comes from a block hash that did not exist when the provider committed its root,
so the provider cannot know which shards will be checked. Anyone can recompute the list.
"""

from __future__ import annotations

from neurotoken.jobs.canonical import keccak256

UINT256_MAX = (1 << 256) - 1


def challenge_index(seed: bytes, job_id: int, counter: int, shard_count: int) -> int:
    """The c-th raw draw: keccak256(abi.encode(seed, jobId, c)) mod shardCount."""
    body = seed + job_id.to_bytes(32, "big") + counter.to_bytes(32, "big")
    return int.from_bytes(keccak256(body), "big") % shard_count


def challenge_indices(seed: bytes, job_id: int, shard_count: int, k: int) -> list[int]:
    """The k distinct challenged shard indices, in the order they were drawn."""
    if len(seed) != 32:
        raise ValueError("the challenge seed is a bytes32")
    if not 0 <= job_id <= UINT256_MAX:
        raise ValueError("the job id is a uint256")
    if shard_count < 1:
        raise ValueError("a job has at least one shard")
    if not 1 <= k <= shard_count:
        raise ValueError(f"k = {k} must be between 1 and the shard count {shard_count}")
    drawn: list[int] = []
    seen: set[int] = set()
    counter = 0
    while len(drawn) < k:
        idx = challenge_index(seed, job_id, counter, shard_count)
        if idx not in seen:
            seen.add(idx)
            drawn.append(idx)
        counter += 1
    return drawn

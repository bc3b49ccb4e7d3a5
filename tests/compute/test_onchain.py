"""Python commitments checked by OpenZeppelin's MerkleProof and the challenge rule on chain."""

from __future__ import annotations

from typing import Any

import pytest

from neurotoken.jobs import keccak256
from neurotoken.proofs import MerkleTree, challenge_indices, shard_leaf


@pytest.fixture(scope="module")
def harness(project: Any, owner: Any) -> Any:
    return project.MerkleProofHarness.deploy(sender=owner)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16, 33])
def test_python_proofs__verify_with_openzeppelin_merkle_proof(harness: Any, count: int) -> None:
    outputs = [keccak256(f"shard {i} of {count}".encode()) for i in range(count)]
    tree = MerkleTree.of_shards(outputs)
    for i, output in enumerate(outputs):
        proof = tree.proof(i)
        assert harness.shardLeaf(i, output) == shard_leaf(i, output)
        assert harness.verify(proof, tree.root, shard_leaf(i, output)) is True
        assert harness.verifyShard(proof, tree.root, i, output) is True


def test_tampered_output__fails_openzeppelin_merkle_proof(harness: Any) -> None:
    outputs = [keccak256(bytes([i])) for i in range(9)]
    tree = MerkleTree.of_shards(outputs)
    assert harness.verifyShard(tree.proof(4), tree.root, 4, keccak256(b"faked")) is False
    assert harness.verifyShard(tree.proof(4), tree.root, 5, outputs[4]) is False


@pytest.mark.parametrize(("job_id", "shards", "k"), [(1, 256, 8), (77, 5, 5), (2**200, 1000, 16)])
def test_challenge_indices__match_the_solidity_derivation(
    harness: Any, job_id: int, shards: int, k: int
) -> None:
    seed = keccak256(b"a future block hash" + job_id.to_bytes(32, "big"))
    assert list(harness.challengeIndices(seed, job_id, shards, k)) == challenge_indices(
        seed, job_id, shards, k
    )


def test_challenge_indices__with_k_above_shard_count__reverts(harness: Any) -> None:
    import ape

    with ape.reverts(harness.HarnessChallengeTooLarge, k=6, shardCount=5):
        harness.challengeIndices(b"\x00" * 32, 1, 5, 6)

"""Merkle trees as OpenZeppelin builds them, and the challenge derivation."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotoken.jobs import keccak256
from neurotoken.proofs import MerkleTree, challenge_indices, process_proof, shard_leaf, verify
from neurotoken.proofs.challenge import challenge_index

# From @openzeppelin/merkle-tree's own test snapshot (src/standard.test.ts.md, seed 0): the
# 12 sorted leaves of a standard tree and its root.
OZ_LEAVES = """
b2ec04776c599a72b9b1d2dfdee91560dc9f479643e201020ded568f68c06a80
c141a2c1fa419824b43dbded51a5087ffe99d20964d995f96fb619781a6662d2
f37f0986a1809cffdf18075f7ff12bdfbc6b46ac4966cbc1dbecf50e59b8146f
fff0acc0b7c7dd4dca88db8b9ea4cb251797946d4bf09314f9487d079cbc8168
a596ffee17c3519d0311edb25ac6d28e08407856a2c6fd1db81a9260295f2851
8cf4ffe7174807707948cd21858ba8360b8f37a69e12696a722c9a500970b7dd
6de05019198fcc90ba19896fca48ba0c8f9dd00b7264c7a22284351f3652ea5c
67c6abdc93cb48b54a8f8e02762d6582ba99455b1112824fa2913e51c14610a3
53e63148bd7b5c974996c9469d0fcc9e764d34ddafec28eabb4a93399eb8b882
53722a4093d3d803b22250c797e0d4fdda3aebfd9c151c8c775ffa8b440f4629
4bda3fa8b7e83fdab2048e0faa3fc2edc803df4f2df2996309c71d9d560ea667
02ad059b3cbe14ca74695645b9287bab95865054a44f35870ccb3224d57ae497
""".split()  # noqa: SIM905
OZ_ROOT = "157e9c38a2614a4493a0e4c38e84a1b43a932665e4d42fa2bf345824b9f101b7"


def test_merkle_tree__reproduces_openzeppelin_standard_tree_snapshot() -> None:
    leaves = [bytes.fromhex(h) for h in OZ_LEAVES]
    tree = MerkleTree(leaves)
    assert tree.root.hex() == OZ_ROOT
    # Standard trees sort their leaves, so the input order does not matter.
    assert MerkleTree(leaves[::-1]).root == tree.root
    assert tree.nodes[-1] == min(leaves)


def test_standard_leaf_hash__matches_openzeppelin_snapshot_value() -> None:
    value = 28058159076087978205069147618309547967726169776540400708466739311867552389147
    leaf = keccak256(keccak256(encode(["uint256", "string[]"], [value, []])))
    assert leaf.hex() == OZ_LEAVES[-1]


def test_shard_leaf__is_the_double_hash_of_abi_encoded_index_and_output() -> None:
    output = keccak256(b"shard bytes")
    assert shard_leaf(7, output) == keccak256(
        keccak256(encode(["uint256", "bytes32"], [7, output]))
    )


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 70), salt=st.binary(max_size=8))
def test_merkle_proofs__verify_every_shard_and_only_that_shard(count: int, salt: bytes) -> None:
    outputs = [keccak256(salt + i.to_bytes(4, "big")) for i in range(count)]
    tree = MerkleTree.of_shards(outputs)
    for i, output in enumerate(outputs):
        proof = tree.proof(i)
        assert verify(proof, tree.root, shard_leaf(i, output))
        assert len(proof) <= max(1, (count - 1).bit_length())
        if count > 1:
            # The same output claimed at another index is not in the tree.
            assert not verify(proof, tree.root, shard_leaf((i + 1) % count, output))


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(2, 40),
    which=st.integers(0, 39),
    node=st.integers(0, 10),
    bit=st.integers(0, 255),
)
def test_merkle_proof__with_any_flipped_bit__fails(
    count: int, which: int, node: int, bit: int
) -> None:
    outputs = [keccak256(i.to_bytes(4, "big")) for i in range(count)]
    tree = MerkleTree.of_shards(outputs)
    i = which % count
    proof = tree.proof(i)
    j = node % len(proof)
    flipped = bytearray(proof[j])
    flipped[bit // 8] ^= 1 << (bit % 8)
    proof[j] = bytes(flipped)
    assert not verify(proof, tree.root, shard_leaf(i, outputs[i]))


def test_single_shard_tree__root_is_the_leaf() -> None:
    tree = MerkleTree.of_shards([keccak256(b"only")])
    assert tree.root == shard_leaf(0, keccak256(b"only")) and tree.proof(0) == []
    assert process_proof(tree.root, []) == tree.root


def test_merkle_tree__empty__raises() -> None:
    with pytest.raises(ValueError, match="at least one leaf"):
        MerkleTree([])


def test_challenge_index__is_keccak_of_abi_encoded_seed_job_counter() -> None:
    seed = keccak256(b"block")
    raw = keccak256(encode(["bytes32", "uint256", "uint256"], [seed, 42, 3]))
    assert challenge_index(seed, 42, 3, 1000) == int.from_bytes(raw, "big") % 1000


@settings(max_examples=60, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    job_id=st.integers(0, 2**256 - 1),
    shards=st.integers(1, 300),
    data=st.data(),
)
def test_challenge_indices__are_k_distinct_in_range_and_reproducible(
    seed: bytes, job_id: int, shards: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, min(shards, 32)))
    drawn = challenge_indices(seed, job_id, shards, k)
    assert len(drawn) == k == len(set(drawn))
    assert all(0 <= i < shards for i in drawn)
    assert drawn == challenge_indices(seed, job_id, shards, k)
    # A smaller k is a prefix: the draw order is fixed by the counter.
    assert challenge_indices(seed, job_id, shards, 1) == drawn[:1]


def test_challenge_indices__with_k_equal_to_shard_count__is_a_permutation() -> None:
    assert sorted(challenge_indices(b"\x01" * 32, 9, 20, 20)) == list(range(20))


def test_challenge_indices__depend_on_seed_and_job() -> None:
    a = challenge_indices(b"\x01" * 32, 1, 1000, 8)
    assert a != challenge_indices(b"\x02" * 32, 1, 1000, 8)
    assert a != challenge_indices(b"\x01" * 32, 2, 1000, 8)


@pytest.mark.parametrize(("shards", "k"), [(10, 11), (10, 0), (0, 1)])
def test_challenge_indices__with_impossible_k__raises(shards: int, k: int) -> None:
    with pytest.raises(ValueError):
        challenge_indices(b"\x01" * 32, 1, shards, k)

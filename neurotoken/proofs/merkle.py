"""Merkle commitments compatible with OpenZeppelin's StandardMerkleTree and MerkleProof.

A job's tree has one leaf per shard: the value `(uint256 index, bytes32 outputHash)`,
ABI-encoded and hashed twice, exactly as `StandardMerkleTree.of(values, ["uint256",
"bytes32"])` in @openzeppelin/merkle-tree does:

    leaf = keccak256(bytes.concat(keccak256(abi.encode(index, outputHash))))

Leaves are sorted, the tree is a complete binary tree stored as an array (leaves at the end,
in reverse order), and parents hash their children as a sorted pair, so a proof from
`proof_for_shard` passes `MerkleProof.verify(proof, root, leaf)` on chain. Binding the index
into the leaf stops a provider from answering a challenge for shard i with shard j.
"""

from __future__ import annotations

from collections.abc import Sequence

from neurotoken.jobs.canonical import keccak256


def shard_leaf(index: int, output_hash: bytes) -> bytes:
    """The double-hashed leaf of shard `index` whose output hashes to `output_hash`."""
    if not 0 <= index < 1 << 256 or len(output_hash) != 32:
        raise ValueError("a shard leaf needs a uint256 index and a 32-byte output hash")
    return keccak256(keccak256(index.to_bytes(32, "big") + output_hash))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative pair hash: keccak256 of the two nodes in ascending order."""
    return keccak256(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` leads to from `leaf` (MerkleProof.processProof)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def proof_in_tree(tree: Sequence[bytes], tree_index: int) -> list[bytes]:
    """The proof of the node at `tree_index` of a StandardMerkleTree array (root at 0)."""
    if not 0 <= tree_index < len(tree):
        raise IndexError(f"tree index {tree_index} is outside a tree of {len(tree)} nodes")
    out = []
    i = tree_index
    while i > 0:
        out.append(tree[i + 1 if i % 2 else i - 1])
        i = (i - 1) // 2
    return out


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """MerkleProof.verify: whether `leaf` is in the tree of `root` by `proof`."""
    if len(leaf) != 32 or len(root) != 32 or any(len(p) != 32 for p in proof):
        return False
    return process_proof(leaf, proof) == root


class MerkleTree:
    """A StandardMerkleTree over pre-hashed 32-byte leaves (in the order given)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        if any(len(leaf) != 32 for leaf in leaves):
            raise ValueError("Merkle leaves must be 32 bytes")
        self.leaves = list(leaves)
        order = sorted(range(len(leaves)), key=lambda i: leaves[i])
        size = 2 * len(leaves) - 1
        tree: list[bytes] = [b""] * size
        self._position = [0] * len(leaves)
        for rank, original in enumerate(order):
            tree[size - 1 - rank] = leaves[original]
            self._position[original] = size - 1 - rank
        for i in range(size - 1 - len(leaves), -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        self._tree = tree

    @classmethod
    def of_shards(cls, output_hashes: Sequence[bytes]) -> MerkleTree:
        """The tree of a job whose shard i output hashes to `output_hashes[i]`."""
        return cls([shard_leaf(i, h) for i, h in enumerate(output_hashes)])

    @property
    def root(self) -> bytes:
        return self._tree[0]

    @property
    def nodes(self) -> list[bytes]:
        """The tree array (root first), as StandardMerkleTree.dump()['tree']."""
        return list(self._tree)

    def tree_index(self, leaf_index: int) -> int:
        """Where the leaf given at position `leaf_index` sits in the tree array."""
        return self._position[leaf_index]

    def proof(self, leaf_index: int) -> list[bytes]:
        """The proof of the leaf given at position `leaf_index` (of the constructor's list)."""
        return proof_in_tree(self._tree, self._position[leaf_index])

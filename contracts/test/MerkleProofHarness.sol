// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title MerkleProofHarness
/// @notice Test-only contract: checks Python-built shard commitments against OpenZeppelin's
/// MerkleProof and the challenge derivation the compute market uses. Never deployed for real.
contract MerkleProofHarness {
    /// @notice The challenge asks for more distinct shards than the job has.
    error HarnessChallengeTooLarge(uint256 k, uint256 shardCount);

    /// @notice OpenZeppelin MerkleProof.verify, unchanged.
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice Whether shard `index` with output hash `outputHash` is committed under `root`.
    function verifyShard(
        bytes32[] calldata proof,
        bytes32 root,
        uint256 index,
        bytes32 outputHash
    ) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, shardLeaf(index, outputHash));
    }

    /// @notice The k distinct challenged shard indices of a job, in the order drawn.
    function challengeIndices(
        bytes32 seed,
        uint256 jobId,
        uint256 shardCount,
        uint256 k
    ) external pure returns (uint256[] memory indices) {
        if (k == 0 || k > shardCount) revert HarnessChallengeTooLarge(k, shardCount);
        indices = new uint256[](k);
        uint256 found;
        for (uint256 c; found < k; ++c) {
            uint256 idx = uint256(keccak256(abi.encode(seed, jobId, c))) % shardCount;
            bool seen;
            for (uint256 j; j < found; ++j) {
                if (indices[j] == idx) {
                    seen = true;
                    break;
                }
            }
            if (!seen) indices[found++] = idx;
        }
    }

    /// @notice The StandardMerkleTree leaf of (uint256 index, bytes32 outputHash), double-hashed.
    function shardLeaf(uint256 index, bytes32 outputHash) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, outputHash))));
    }
}

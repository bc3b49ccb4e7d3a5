// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ChallengeDerivation
/// @notice The challenged shards of a committed result, from its challenge seed (mirrored by
/// `neurotoken.proofs.challenge.challenge_indices`).
/// @dev For counter c = 0, 1, 2, ...: index = uint256(keccak256(abi.encode(seed, jobId, c))) %
/// shardCount; an index already drawn is skipped; the first k distinct indices, in the order
/// drawn, are the challenged shards. Callers check 1 <= k <= shardCount.
library ChallengeDerivation {
    /// @notice The k challenged indices, in the order drawn.
    function derive(
        bytes32 seed,
        uint256 jobId,
        uint256 shardCount,
        uint256 challengeCount
    ) internal pure returns (uint256[] memory indices) {
        indices = new uint256[](challengeCount);
        uint256 found = 0;
        for (uint256 counter; found < challengeCount; ++counter) {
            uint256 index = uint256(keccak256(abi.encode(seed, jobId, counter))) % shardCount;
            bool seen = false;
            for (uint256 j; j < found; ++j) {
                if (indices[j] == index) {
                    seen = true;
                    break;
                }
            }
            if (!seen) {
                indices[found] = index;
                ++found;
            }
        }
    }
}

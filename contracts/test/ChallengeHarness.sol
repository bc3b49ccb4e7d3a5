// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChallengeDerivation} from "../libraries/ChallengeDerivation.sol";

/// @title ChallengeHarness
/// @notice Test-only: exposes the market's challenge derivation on any input, so property
/// tests can compare it with the Python mirror (the market itself only derives from a job).
contract ChallengeHarness {
    /// @notice Thrown for counts the market would never derive from.
    error ChallengeHarnessInvalidCounts(uint256 shardCount, uint256 challengeCount);

    /// @notice The k challenged indices for (seed, jobId), as the market derives them.
    function derive(
        bytes32 seed,
        uint256 jobId,
        uint256 shardCount,
        uint256 challengeCount
    ) external pure returns (uint256[] memory) {
        if (shardCount == 0 || challengeCount == 0 || challengeCount > shardCount) {
            revert ChallengeHarnessInvalidCounts(shardCount, challengeCount);
        }
        return ChallengeDerivation.derive(seed, jobId, shardCount, challengeCount);
    }
}

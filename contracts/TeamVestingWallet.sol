// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {VestingWallet} from "@openzeppelin/contracts/finance/VestingWallet.sol";
import {VestingWalletCliff} from "@openzeppelin/contracts/finance/VestingWalletCliff.sol";

/// @title TeamVestingWallet
/// @notice OpenZeppelin's VestingWalletCliff made concrete: the team's NTK vest linearly from
/// `start` over `duration` seconds, and nothing can be released before `start + cliffSeconds`.
/// @dev Made by the token sale at its deployment, so its terms are fixed with the sale's. The
/// beneficiary is the wallet's owner (Ownable), as in OpenZeppelin's VestingWallet.
contract TeamVestingWallet is VestingWalletCliff {
    /// @param beneficiary Receives the vested tokens (and owns the wallet).
    /// @param startTimestamp When vesting starts.
    /// @param durationSeconds Length of the linear vesting, cliff included.
    /// @param cliffSeconds Nothing vests before `startTimestamp + cliffSeconds`; at most `durationSeconds`.
    constructor(
        address beneficiary,
        uint64 startTimestamp,
        uint64 durationSeconds,
        uint64 cliffSeconds
    ) VestingWallet(beneficiary, startTimestamp, durationSeconds) VestingWalletCliff(cliffSeconds) {}
}

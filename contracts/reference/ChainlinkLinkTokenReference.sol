// SPDX-License-Identifier: MIT
// solhint-disable-next-line compiler-version
pragma solidity 0.8.19;

import {LinkToken} from "@chainlink/contracts/src/v0.8/shared/token/ERC677/LinkToken.sol";

/// @title ChainlinkLinkTokenReference
/// @notice Benchmark reference only (issue 14): Chainlink's `LinkToken` (ERC-677: `transferAndCall`
/// pays for a request and hands it to the Operator in one call), unchanged. The deployer owns it and
/// grants itself the mint role to fund consumers. Never deployed outside `make bench` and its test.
// solhint-disable-next-line no-empty-blocks
contract ChainlinkLinkTokenReference is LinkToken {}

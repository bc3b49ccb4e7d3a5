// SPDX-License-Identifier: MIT
// solhint-disable-next-line compiler-version
pragma solidity 0.8.19;

import {Operator} from "@chainlink/contracts/src/v0.8/operatorforwarder/Operator.sol";

/// @title ChainlinkOperatorReference
/// @notice Benchmark reference only (issue 14): Chainlink's own `Operator`, unchanged, compiled by
/// solc 0.8.19 as its pragma asks, owned by the deployer. The node that fulfills requests is set with
/// `setAuthorizedSenders`. Never deployed outside `make bench` and its test.
contract ChainlinkOperatorReference is Operator {
    /// @param link The LINK token requests are paid in.
    constructor(address link) Operator(link, msg.sender) {}
}

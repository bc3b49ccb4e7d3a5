// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ITokenSale} from "../interfaces/ITokenSale.sol";

/// @title ReentrantBuyer (test only)
/// @notice A buyer (or treasury) contract that calls back into the sale when it receives ETH:
/// on the partial-fill return, on a refund or on the treasury transfer. Arm it with the call to
/// make; it records what the sale answered, and either swallows the failure (so the outer call
/// can finish and the test can inspect the state) or bubbles it up.
contract ReentrantBuyer {
    ITokenSale public sale;

    bytes public attackData;
    uint256 public attackValue;
    bool public bubble;
    bool public rejectEth;

    uint256 public reentries;
    bool public lastReentrySucceeded;
    bytes public lastReentryError;
    uint256 public received;

    error ReentrantBuyerRejectsEth(uint256 amountWei);

    constructor(ITokenSale sale_) {
        sale = sale_;
    }

    /// @notice Points it at `sale_` (a treasury is made before the sale it serves).
    function setSale(ITokenSale sale_) external {
        sale = sale_;
    }

    /// @notice Calls `data` on the sale (with `value` wei) from inside `receive`.
    function arm(bytes calldata data, uint256 value, bool bubble_) external {
        attackData = data;
        attackValue = value;
        bubble = bubble_;
    }

    function disarm() external {
        delete attackData;
    }

    function setRejectEth(bool reject) external {
        rejectEth = reject;
    }

    function buy(bytes32[] calldata proof) external payable returns (uint256) {
        return sale.buy{value: msg.value}(proof);
    }

    function refund() external returns (uint256) {
        return sale.refund(address(this));
    }

    // solhint-disable-next-line no-complex-fallback
    receive() external payable {
        if (rejectEth) revert ReentrantBuyerRejectsEth(msg.value);
        received += msg.value;
        if (attackData.length == 0) return;
        bytes memory data = attackData;
        delete attackData; // one attempt per arming
        ++reentries;
        (bool ok, bytes memory err) = address(sale).call{value: attackValue}(data);
        lastReentrySucceeded = ok;
        lastReentryError = err;
        if (!ok && bubble) {
            assembly ("memory-safe") {
                revert(add(err, 0x20), mload(err))
            }
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "solady/tokens/ERC20.sol";

/// @title ReferenceSoladyToken
/// @notice Benchmark reference only: Solady's gas-optimized ERC-20 (with permit), the whole
/// supply minted to the deployer. Never deployed outside `make bench`.
contract ReferenceSoladyToken is ERC20 {
    /// @param supply Tokens minted to the deployer.
    constructor(uint256 supply) {
        _mint(msg.sender, supply);
    }

    /// @notice Burns `amount` of the caller's tokens.
    function burn(uint256 amount) external {
        _burn(msg.sender, amount);
    }

    /// @inheritdoc ERC20
    function name() public pure override returns (string memory) {
        return "Reference Solady";
    }

    /// @inheritdoc ERC20
    function symbol() public pure override returns (string memory) {
        return "RSOL";
    }
}

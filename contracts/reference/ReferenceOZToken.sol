// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title ReferenceOZToken
/// @notice Benchmark reference only: plain OpenZeppelin v5 ERC-20 with permit and burn, the
/// whole supply minted to the deployer. Never deployed outside `make bench`.
contract ReferenceOZToken is ERC20, ERC20Burnable, ERC20Permit {
    /// @param supply Tokens minted to the deployer.
    constructor(uint256 supply) ERC20("Reference OZ", "ROZ") ERC20Permit("Reference OZ") {
        _mint(msg.sender, supply);
    }
}

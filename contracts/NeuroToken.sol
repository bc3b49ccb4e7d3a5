// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {INeuroToken} from "./interfaces/INeuroToken.sol";

/// @title NeuroToken
/// @notice Neurotoken (NTK): OpenZeppelin v5 ERC-20 with cap, permit and burn. See INeuroToken.
/// @dev The admin role can only grant or revoke the minter role; it has no power over
/// balances. Once `finishMinting` has run, no role can mint again.
contract NeuroToken is INeuroToken, ERC20Capped, ERC20Burnable, ERC20Permit, AccessControl {
    /// @inheritdoc INeuroToken
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice The supply cap: 100,000,000 NTK.
    uint256 public constant CAP = 100_000_000 ether;

    /// @inheritdoc INeuroToken
    bool public mintingFinished;

    /// @param admin The account that may grant the minter role (the deployer, who hands it
    /// to the sale and then renounces the admin role).
    constructor(address admin) ERC20("Neurotoken", "NTK") ERC20Capped(CAP) ERC20Permit("Neurotoken") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc INeuroToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        if (mintingFinished) revert NeuroTokenMintingFinished();
        _mint(to, amount);
    }

    /// @inheritdoc INeuroToken
    function finishMinting() external onlyRole(MINTER_ROLE) {
        if (mintingFinished) revert NeuroTokenMintingFinished();
        mintingFinished = true;
        emit MintingFinished(_msgSender(), totalSupply());
    }

    /// @dev ERC20Capped's cap check is the only extension of the transfer hook.
    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}

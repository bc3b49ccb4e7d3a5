// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title Neurotoken (NTK)
/// @notice The ERC-20 of the Neurotoken compute marketplace: capped at 100,000,000 NTK,
/// EIP-2612 permit, burnable by holders. Tokens are minted only by holders of the minter
/// role (the token sale) and only until minting is finished, which is final. No account,
/// admin included, can move, freeze or burn another holder's tokens, and transfers cannot
/// be paused.
interface INeuroToken is IERC20 {
    /// @notice Minting was closed for ever.
    /// @param account The minter that closed it.
    /// @param finalSupply The total supply at that moment; it can only fall (by burns) from here.
    event MintingFinished(address indexed account, uint256 finalSupply);

    /// @notice A mint or a second `finishMinting` was attempted after minting was closed.
    error NeuroTokenMintingFinished();

    /// @notice The role allowed to mint and to close minting.
    function MINTER_ROLE() external view returns (bytes32);

    /// @notice Whether minting has been closed for ever.
    function mintingFinished() external view returns (bool);

    /// @notice Mints `amount` new tokens to `to`.
    /// @dev Reverts with `NeuroTokenMintingFinished` once minting is closed, with
    /// `ERC20ExceededCap` past the cap and `AccessControlUnauthorizedAccount` for non-minters.
    /// @param to The receiver; the zero address reverts with `ERC20InvalidReceiver`.
    /// @param amount The amount in the token's smallest unit (18 decimals).
    function mint(address to, uint256 amount) external;

    /// @notice Closes minting for ever. Only a minter may call it, and only once.
    function finishMinting() external;
}

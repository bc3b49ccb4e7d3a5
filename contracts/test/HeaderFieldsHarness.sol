// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {BlockHeader} from "@openzeppelin/contracts/utils/BlockHeader.sol";
import {HeaderFields} from "../libraries/HeaderFields.sol";

/// @title HeaderFieldsHarness
/// @notice Test-only: HeaderFields beside OpenZeppelin's BlockHeader on the same bytes, so
/// property tests can check that they read the same number and prevRandao.
contract HeaderFieldsHarness {
    /// @notice HeaderFields' reading.
    function fields(bytes calldata header) external pure returns (uint256, bytes32) {
        return HeaderFields.numberAndPrevRandao(header);
    }

    /// @notice OpenZeppelin BlockHeader's reading.
    function openZeppelin(bytes calldata header) external pure returns (uint256, bytes32) {
        bytes memory copy = header;
        return (BlockHeader.getNumber(copy), BlockHeader.getPrevRandao(copy));
    }
}

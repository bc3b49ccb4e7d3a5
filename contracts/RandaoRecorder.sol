// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Blockhash} from "@openzeppelin/contracts/utils/Blockhash.sol";
import {IRandaoRecorder} from "./interfaces/IRandaoRecorder.sol";
import {HeaderFields} from "./libraries/HeaderFields.sol";

/// @title RandaoRecorder
/// @notice Records the RANDAO mix of any of the last 8,191 blocks from its header, for good.
/// @dev The header's number and prevRandao are read by HeaderFields; the header counts only if
/// its keccak256 is that block's hash, as OpenZeppelin's `Blockhash.blockHash` gives it
/// (EIP-2935 history past 256 blocks). One recorder serves any number of markets; it holds no
/// funds and has no owner.
contract RandaoRecorder is IRandaoRecorder {
    mapping(uint256 blockNumber => bytes32 mix) private _mixes;

    /// @inheritdoc IRandaoRecorder
    function record(bytes calldata header) external returns (uint256 blockNumber, bytes32 mix) {
        (blockNumber, mix) = HeaderFields.numberAndPrevRandao(header);
        // A block not mined or out of reach has hash zero, which no keccak256 equals.
        if (Blockhash.blockHash(blockNumber) != keccak256(header)) revert RandaoBlockHeaderUnknown(blockNumber);
        if (mix == bytes32(0)) revert RandaoMissing(blockNumber);
        bytes32 recorded = _mixes[blockNumber];
        if (recorded != bytes32(0)) revert RandaoAlreadyRecorded(blockNumber, recorded);
        _mixes[blockNumber] = mix;
        emit RandaoRecorded(blockNumber, mix);
    }

    /// @inheritdoc IRandaoRecorder
    function mixOf(uint256 blockNumber) external view returns (bytes32) {
        return _mixes[blockNumber];
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {BlockHeader} from "@openzeppelin/contracts/utils/BlockHeader.sol";
import {Memory} from "@openzeppelin/contracts/utils/Memory.sol";
import {IRandaoRecorder} from "./interfaces/IRandaoRecorder.sol";

/// @title RandaoRecorder
/// @notice Records the RANDAO mix of any of the last 8,191 blocks from its header, for good.
/// @dev OpenZeppelin's BlockHeader parses the header and checks it against
/// `Blockhash.blockHash` (EIP-2935 history past 256 blocks). One recorder serves any number of
/// markets; it holds no funds and has no owner.
contract RandaoRecorder is IRandaoRecorder {
    mapping(uint256 blockNumber => bytes32 mix) private _mixes;

    /// @inheritdoc IRandaoRecorder
    function record(bytes calldata header) external returns (uint256 blockNumber, bytes32 mix) {
        bytes memory rlp = header;
        Memory.Slice[] memory fields = BlockHeader.parseHeader(rlp);
        blockNumber = BlockHeader.getNumber(fields);
        // A block not mined or out of reach has hash zero, which no keccak256 equals.
        if (!BlockHeader.verifyBlockHeader(fields, keccak256(rlp))) revert RandaoBlockHeaderUnknown(blockNumber);
        mix = BlockHeader.getPrevRandao(fields);
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

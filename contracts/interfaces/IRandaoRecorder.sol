// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IRandaoRecorder
/// @notice Keeps, for good, the RANDAO mix (prevRandao, EIP-4399) of recent blocks, each proved
/// by the block's RLP header against its block hash. The beacon chain fixes a block's mix, not
/// the block's producer: a challenge seeded with the mix of a block D after a commit cannot be
/// chosen by whoever builds that block (ComputeMarket's `randaoDelay`, docs/proofs.md).
interface IRandaoRecorder {
    /// @notice The RANDAO mix of a block was recorded for good.
    event RandaoRecorded(uint256 indexed blockNumber, bytes32 mix);

    /// @notice The header is not the RLP of a block within reach of this chain: its keccak256
    /// is not the hash of the block number it names (a forged or altered header, a block not
    /// mined yet, or one older than the 8,191 blocks of EIP-2935 history).
    /// @param blockNumber The block number the header names.
    error RandaoBlockHeaderUnknown(uint256 blockNumber);
    /// @notice The block's mix is zero: this chain gives no RANDAO to seed with.
    /// @param blockNumber The block whose header was given.
    error RandaoMissing(uint256 blockNumber);
    /// @notice The block's mix is already recorded (it never changes).
    /// @param blockNumber The block whose header was given.
    /// @param mix The mix already recorded.
    error RandaoAlreadyRecorded(uint256 blockNumber, bytes32 mix);

    /// @notice Records the RANDAO mix of the block whose RLP-encoded header this is, if that
    /// block is one of the last 8,191. Anyone may call. Bytes not shaped as a header revert
    /// with HeaderFields' HeaderFieldsMalformed.
    /// @param header The block's header, RLP-encoded exactly as hashed into its block hash.
    /// @return blockNumber The block recorded.
    /// @return mix Its RANDAO mix.
    function record(bytes calldata header) external returns (uint256 blockNumber, bytes32 mix);

    /// @notice The mix recorded for `blockNumber`; zero if none was.
    function mixOf(uint256 blockNumber) external view returns (bytes32);
}

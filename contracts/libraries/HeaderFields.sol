// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title HeaderFields
/// @notice Reads the number (field 8) and the prevRandao, formerly mixHash (field 13), of an
/// RLP-encoded execution block header in calldata, walking only the items before them.
/// @dev OpenZeppelin's BlockHeader decodes every field into memory first: reading these two
/// fields of a Prague header in a transaction costs about 114,000 gas with it, 38,000 with this
/// (`make bench`, the RANDAO table; tests/market/test_header_fields.py checks that both read
/// the same on headers of every shape). Callers must check the
/// header against its block hash (keccak256(header) == blockhash(number)): only then are the
/// bytes a real header; on any other input this reads what the layout says or reverts with
/// HeaderFieldsMalformed, never out of bounds.
library HeaderFields {
    /// @notice The bytes are not an RLP list of at least 14 items of the expected kinds.
    error HeaderFieldsMalformed();

    uint256 private constant _NUMBER = 8;
    uint256 private constant _PREV_RANDAO = 13;

    /// @notice The header's block number and prevRandao.
    function numberAndPrevRandao(bytes calldata header) internal pure returns (uint256 number, bytes32 prevRandao) {
        uint256 offset = _listPayload(header);
        uint256 start;
        uint256 length;
        for (uint256 field; field < _NUMBER; ++field) {
            (start, length) = _item(header, offset);
            offset = start + length;
        }
        (start, length) = _item(header, offset);
        if (length > 32) revert HeaderFieldsMalformed();
        // bytes32(...) pads a shorter slice with zeros on the right; a shift of 256 gives 0
        number = uint256(bytes32(header[start:start + length])) >> (256 - 8 * length);
        offset = start + length;
        for (uint256 field = _NUMBER + 1; field < _PREV_RANDAO; ++field) {
            (start, length) = _item(header, offset);
            offset = start + length;
        }
        (start, length) = _item(header, offset);
        if (length != 32) revert HeaderFieldsMalformed();
        prevRandao = bytes32(header[start:start + 32]);
    }

    /// @dev Where the payload of the list that `data` must be starts.
    function _listPayload(bytes calldata data) private pure returns (uint256) {
        if (data.length == 0) revert HeaderFieldsMalformed();
        uint256 prefix = uint8(data[0]);
        if (prefix < 0xc0) revert HeaderFieldsMalformed();
        if (prefix < 0xf8) return 1;
        return 1 + (prefix - 0xf7);
    }

    /// @dev The payload (start, length) of the string item at `offset`, inside `data`.
    function _item(bytes calldata data, uint256 offset) private pure returns (uint256 start, uint256 length) {
        if (offset >= data.length) revert HeaderFieldsMalformed();
        uint256 prefix = uint8(data[offset]);
        if (prefix < 0x80) {
            (start, length) = (offset, 1);
        } else if (prefix < 0xb8) {
            (start, length) = (offset + 1, prefix - 0x80);
        } else if (prefix < 0xc0) {
            uint256 lengthOfLength = prefix - 0xb7; // 1 to 8 bytes
            start = offset + 1 + lengthOfLength;
            if (start > data.length) revert HeaderFieldsMalformed();
            length = uint256(bytes32(data[offset + 1:start])) >> (256 - 8 * lengthOfLength);
        } else {
            revert HeaderFieldsMalformed(); // a list where a header has strings
        }
        if (length > data.length - start) revert HeaderFieldsMalformed();
    }
}

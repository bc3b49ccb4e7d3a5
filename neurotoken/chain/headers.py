"""A block's execution header, RLP-encoded, rebuilt from the block a node answers
(`w3.eth.get_block(n)`): for recording a block's RANDAO mix on chain. The market takes the
header, checks keccak256(header) == blockhash(number) (OpenZeppelin's BlockHeader) and
stores its prevRandao (the header's mixHash field), so the mix it keeps is the chain's own.

The fields go in the canonical order: the 15 Frontier fields, then those later forks added,
in fork order (London's baseFeePerGas, Shanghai's withdrawalsRoot, Cancun's blobGasUsed,
excessBlobGas and parentBeaconBlockRoot, Prague's requestsHash), each while the block has
it. The rebuilt header is checked against the block's hash: a chain whose headers carry
fields this module does not know fails that check (`BlockHeaderError`) rather than
answering a header the contract would refuse.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import rlp
from eth_utils.conversions import to_bytes
from eth_utils.crypto import keccak
from web3 import Web3

INT = "int"

FRONTIER_FIELDS: tuple[tuple[str, int | str], ...] = (
    ("parentHash", 32),
    ("sha3Uncles", 32),
    ("miner", 20),
    ("stateRoot", 32),
    ("transactionsRoot", 32),
    ("receiptsRoot", 32),
    ("logsBloom", 256),
    ("difficulty", INT),
    ("number", INT),
    ("gasLimit", INT),
    ("gasUsed", INT),
    ("timestamp", INT),
    ("extraData", -1),  # any length (at most 32 on mainnet)
    ("mixHash", 32),
    ("nonce", 8),
)
"""The fields every header has, in order: the byte length of each bytes field (-1: any),
or INT for those RLP encodes as integers."""

FORK_FIELDS: tuple[tuple[str, int | str], ...] = (
    ("baseFeePerGas", INT),  # London
    ("withdrawalsRoot", 32),  # Shanghai
    ("blobGasUsed", INT),  # Cancun
    ("excessBlobGas", INT),  # Cancun
    ("parentBeaconBlockRoot", 32),  # Cancun
    ("requestsHash", 32),  # Prague
)
"""The fields later forks appended, in fork order: a header has a prefix of them."""


class BlockHeaderError(ValueError):
    """A block whose header cannot be rebuilt: a field missing or malformed, or a rebuilt
    header whose keccak256 is not the block's hash."""


def _field(number: object, name: str, value: object, kind: int | str) -> int | bytes:
    """One field as RLP takes it: an int for the integer fields, bytes of the right length
    for the others (web3 answers HexBytes, the miner as a checksummed hex string)."""
    if kind == INT:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # a raw JSON-RPC quantity, "0x1b4"
                value = int(value, 16)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BlockHeaderError(f"block {number}: {name} is not an integer >= 0: {value!r}")
        return value
    return _bytes(number, name, value, kind if isinstance(kind, int) else -1)


def _bytes(number: object, name: str, value: object, size: int) -> bytes:
    """A bytes field from HexBytes/bytes or a hex string; `size` bytes long unless -1."""
    try:
        if isinstance(value, str):
            data = to_bytes(hexstr=value)
        elif isinstance(value, bytes | bytearray):
            data = bytes(value)
        else:
            raise TypeError(f"not bytes: {value!r}")
    except (TypeError, ValueError) as exc:
        raise BlockHeaderError(f"block {number}: {name}: {exc}") from exc
    if size >= 0 and len(data) != size:
        raise BlockHeaderError(f"block {number}: {name} is {len(data)} bytes, not {size}")
    return data


def header_rlp(block: Mapping[str, Any]) -> bytes:
    """The block's header, RLP-encoded, checked against its hash: keccak256 of the answer
    is `block["hash"]`. Raises BlockHeaderError when a Frontier field or the hash is
    missing, a field is malformed, or the rebuilt header does not hash to the block's hash
    (fields this module does not know)."""
    number = block.get("number", "?")
    fields: list[int | bytes] = []
    for name, kind in FRONTIER_FIELDS:
        if block.get(name) is None:
            raise BlockHeaderError(f"block {number}: no {name} (a field every header has)")
        fields.append(_field(number, name, block[name], kind))
    for name, kind in FORK_FIELDS:
        if block.get(name) is None:
            break
        fields.append(_field(number, name, block[name], kind))
    encoded: bytes = rlp.encode(fields)
    expected = block.get("hash")
    if expected is None:
        raise BlockHeaderError(f"block {number}: no hash to check the header against")
    want = _bytes(number, "hash", expected, 32)
    got = keccak(encoded)
    if got != want:
        raise BlockHeaderError(
            f"block {number}: the rebuilt header hashes to 0x{got.hex()}, the block's hash is "
            f"0x{want.hex()} (a field altered, or header fields this module does not know: "
            f"it knows {', '.join(n for n, _ in FRONTIER_FIELDS + FORK_FIELDS)})"
        )
    return encoded


def header_at(w3: Web3, number: int) -> bytes:
    """The RLP header of block `number` on `w3`'s chain (see `header_rlp`)."""
    return header_rlp(w3.eth.get_block(number, full_transactions=False))

"""The block header rebuilt from a node's block (`neurotoken.chain.headers`), against a real
anvil (Prague: every fork field present): it hashes to the block's hash, empty blocks and
blocks with transactions alike, and decodes to the block's mixHash and number; an altered
field or a missing one is refused, naming the block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3

from devchain.anvil import Anvil, anvil_keys
from neurotoken.chain.headers import BlockHeaderError, header_at, header_rlp


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with Anvil() as anvil:
        yield anvil.web3()


def _mine(w3: Web3) -> None:
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _transfer(w3: Web3, key: str, to: str) -> int:
    """A plain ETH transfer signed with `key`; returns the block it mined in."""
    sender = Account.from_key(key)
    tx = {
        "to": Web3.to_checksum_address(to),
        "value": 10**15,
        "gas": 21_000,
        "maxFeePerGas": 10 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": w3.eth.chain_id,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    return int(w3.eth.wait_for_transaction_receipt(tx_hash)["blockNumber"])


def test_header__hashes_to_the_block_hash__mix_and_number_in_place(w3: Web3) -> None:
    keys = anvil_keys(3)
    _mine(w3)
    _mine(w3)
    with_txs = [_transfer(w3, keys[0], Account.from_key(keys[1]).address)]
    with_txs.append(_transfer(w3, keys[1], "0x" + "00" * 19 + "01"))
    _mine(w3)
    head = int(w3.eth.block_number)
    assert head >= 5
    for n in range(head + 1):
        block = w3.eth.get_block(n)
        header = header_at(w3, n)
        assert header == header_rlp(block)
        assert keccak(header) == block["hash"]
        fields = rlp.decode(header)
        assert fields[13] == block["mixHash"]
        assert int.from_bytes(fields[8], "big") == n
        assert len(fields) == 21  # Prague: through requestsHash
        if n in with_txs:
            assert len(block["transactions"]) == 1
    assert w3.eth.get_block(0)["mixHash"] == HexBytes(b"\0" * 32)
    assert w3.eth.get_block(head)["mixHash"] != HexBytes(b"\0" * 32)


@pytest.mark.parametrize(
    ("field", "value"),
    [("mixHash", HexBytes(b"\x11" * 32)), ("timestamp", 12345), ("requestsHash", None)],
)
def test_header__an_altered_field__refused_naming_the_block(
    w3: Web3, field: str, value: Any
) -> None:
    _mine(w3)
    block = dict(w3.eth.get_block("latest"))
    n = block["number"]
    if value is None:
        del block[field]  # a fork field dropped: the header no longer hashes right
    else:
        block[field] = value
    with pytest.raises(BlockHeaderError, match=rf"block {n}: the rebuilt header hashes to"):
        header_rlp(block)


@pytest.mark.parametrize("field", ["stateRoot", "mixHash", "nonce", "difficulty"])
def test_header__a_missing_frontier_field__refused(w3: Web3, field: str) -> None:
    block = dict(w3.eth.get_block("latest"))
    del block[field]
    with pytest.raises(BlockHeaderError, match=rf"block {block['number']}: no {field}"):
        header_rlp(block)


def test_header__a_malformed_field_or_no_hash__refused(w3: Web3) -> None:
    block = dict(w3.eth.get_block("latest"))
    with pytest.raises(BlockHeaderError, match="mixHash is 31 bytes, not 32"):
        header_rlp({**block, "mixHash": HexBytes(b"\x11" * 31)})
    with pytest.raises(BlockHeaderError, match="gasUsed is not an integer"):
        header_rlp({**block, "gasUsed": -1})
    with pytest.raises(BlockHeaderError, match="no hash"):
        header_rlp({k: v for k, v in block.items() if k != "hash"})

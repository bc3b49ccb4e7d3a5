"""The EIP-712 domain every signed message of the project uses (permits, verdicts)."""

from __future__ import annotations

from eth_utils.crypto import keccak

EIP712_DOMAIN_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
"""EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)."""

DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)

"""EIP-2612 permits for NTK: the typed data, defined once, and a signer.

Used by the scripts (post a job with a permit), the provider agent and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from neurotoken.eip712 import EIP712_DOMAIN_FIELDS

PERMIT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_FIELDS,
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


@dataclass(frozen=True)
class PermitSignature:
    """The (v, r, s) triple that ERC20Permit.permit takes."""

    v: int
    r: bytes
    s: bytes


def permit_typed_data(
    *,
    token_name: str,
    token_address: str,
    chain_id: int,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
    version: str = "1",
) -> dict[str, Any]:
    """The full EIP-712 message of an ERC-2612 permit (OpenZeppelin ERC20Permit domain)."""
    return {
        "types": PERMIT_TYPES,
        "primaryType": "Permit",
        "domain": {
            "name": token_name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(token_address),
        },
        "message": {
            "owner": to_checksum_address(owner),
            "spender": to_checksum_address(spender),
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def sign_permit(private_key: str | bytes, **fields: Any) -> PermitSignature:
    """Signs a permit; `fields` are those of `permit_typed_data`."""
    signed = Account.sign_typed_data(private_key, full_message=permit_typed_data(**fields))
    return PermitSignature(
        v=signed.v, r=signed.r.to_bytes(32, "big"), s=signed.s.to_bytes(32, "big")
    )

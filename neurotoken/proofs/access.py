"""Who may read a proof bundle, and how a reader proves who it is (pure: eth-account only).

A bundle (manifest, proofs, spec and every shard output) is the result a client paid for:
the provider serves it to the job's client and to the oracles that must check it, and to
no one else. A reader proves its address with an *access token*: an EIP-191
(``personal_sign``) signature by its Ethereum key over

    neurotoken bundle access
    chain <chain id>
    market <market address, lowercase hex>
    root <result root, lowercase hex>
    expires <unix seconds>

sent with every request for that bundle as

    Authorization: NTK-Bundle <0xaddress> <expires> <0xsignature>

One token covers one bundle (one result root) until it expires, so a verification that
fetches 65,536 outputs signs once. The server refuses tokens that have expired or that
expire more than `MAX_TOKEN_AHEAD_S` ahead of its clock (a stolen token is short-lived),
then recovers the signer and asks its own rule (the provider agent: the job's client or an
oracle of the job) whether that address may read that root. The chain id and market bind a
token to one deployment: a signature for a testnet or another market opens nothing here.

Parsing is total: `parse_token` returns None for anything that is not a well-formed header
(any type, any length), and `check_token` returns a refusal, never raises.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

SCHEME = "NTK-Bundle"
PURPOSE = "neurotoken bundle access"
TOKEN_LIFETIME_S = 900
"""How long a token is signed for by default (15 minutes)."""
MAX_TOKEN_AHEAD_S = 3600
"""A server refuses a token expiring more than this far ahead of its clock (60 minutes)."""
MAX_HEADER_CHARS = 256
"""A longer Authorization header is refused unread (a well-formed one has 201 characters)."""
RESULT_RETENTION_S = 7 * 24 * 3600
"""How long after a job's verdict deadline its provider must still serve the bundle to the
job's client (7 days). A paid job settles before its verdict deadline, so this is at least
7 days after settlement. Not enforced on chain: see docs/proofs.md section 5."""

_HEADER = re.compile(
    r"^(?P<scheme>[A-Za-z-]{1,16}) (?P<address>0x[0-9a-fA-F]{40}) "
    r"(?P<expires>[0-9]{1,12}) (?P<signature>0x[0-9a-fA-F]{130})$"
)
_MARKET = re.compile(r"^0x[0-9a-fA-F]{40}$")


def access_message(chain_id: int, market: str, root: bytes, expires: int) -> str:
    """The text a reader signs (EIP-191) to read the bundle `root` of `market` on `chain_id`
    until `expires` (unix seconds)."""
    if not _MARKET.match(market):
        raise ValueError(f"not a market address: {market!r}")
    if len(root) != 32:
        raise ValueError("a result root is 32 bytes")
    return (
        f"{PURPOSE}\nchain {int(chain_id)}\nmarket {market.lower()}\n"
        f"root 0x{root.hex()}\nexpires {int(expires)}"
    )


@dataclass(frozen=True)
class AccessToken:
    """A signed claim: `address` may read one bundle until `expires` (unix seconds)."""

    address: str
    """The claimed signer, checksummed."""
    expires: int
    signature: bytes

    @property
    def header(self) -> str:
        """The Authorization header's value."""
        return f"{SCHEME} {self.address} {self.expires} 0x{self.signature.hex()}"


def sign_token(
    private_key: bytes | str,
    chain_id: int,
    market: str,
    root: bytes,
    *,
    lifetime_s: float = TOKEN_LIFETIME_S,
    now: float | None = None,
) -> AccessToken:
    """A token for reading bundle `root`, valid for `lifetime_s` seconds from `now`."""
    started = time.time() if now is None else now
    expires = int(started + lifetime_s)
    message = encode_defunct(text=access_message(chain_id, market, root, expires))
    account = Account.from_key(private_key)
    signed = Account.sign_message(message, account.key)
    return AccessToken(str(account.address), expires, bytes(signed.signature))


def parse_token(header: object) -> AccessToken | None:
    """The token in an Authorization header's value, or None for anything malformed."""
    if not isinstance(header, str) or len(header) > MAX_HEADER_CHARS or not header.isascii():
        return None
    match = _HEADER.match(header)
    if match is None or match["scheme"].lower() != SCHEME.lower():
        return None
    try:
        address = to_checksum_address(match["address"])
        signature = bytes.fromhex(match["signature"][2:])
    except ValueError:
        return None
    return AccessToken(address, int(match["expires"]), signature)


@dataclass(frozen=True)
class Checked:
    """The outcome of `check_token`: the signer, or why the token is refused."""

    token: AccessToken | None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.token is not None and not self.problem


def check_token(
    header: object,
    chain_id: int,
    market: str,
    root: bytes,
    now: float | None = None,
    max_ahead_s: float = MAX_TOKEN_AHEAD_S,
) -> Checked:
    """Whether `header` holds a live token for bundle `root`, signed by the address it names.

    Says nothing about whether that address may read the bundle: that is the server's rule.
    Never raises."""
    token = parse_token(header)
    if token is None:
        return Checked(None, "no access token, or a malformed one")
    clock = time.time() if now is None else now
    if token.expires <= clock:
        return Checked(None, "the access token has expired")
    if token.expires > clock + max_ahead_s:
        return Checked(None, f"the access token expires more than {int(max_ahead_s)}s ahead")
    try:
        message = encode_defunct(text=access_message(chain_id, market, root, token.expires))
        signer = Account.recover_message(message, signature=token.signature)
    except Exception:  # a signature eth-account cannot use (bad v, s out of range, ...)
        return Checked(None, "the access token's signature is invalid")
    if to_checksum_address(signer) != token.address:
        return Checked(None, "the access token is not signed by its address for this bundle")
    return Checked(token)


@dataclass(frozen=True)
class BundleAccess:
    """What a reader sends to read one bundle: the root it names and the header value."""

    root: bytes
    authorization: str

    @classmethod
    def sign(
        cls,
        private_key: bytes | str,
        chain_id: int,
        market: str,
        root: bytes,
        *,
        lifetime_s: float = TOKEN_LIFETIME_S,
        now: float | None = None,
    ) -> BundleAccess:
        token = sign_token(private_key, chain_id, market, root, lifetime_s=lifetime_s, now=now)
        return cls(root, token.header)


__all__ = [
    "MAX_HEADER_CHARS",
    "MAX_TOKEN_AHEAD_S",
    "PURPOSE",
    "RESULT_RETENTION_S",
    "SCHEME",
    "TOKEN_LIFETIME_S",
    "AccessToken",
    "BundleAccess",
    "Checked",
    "access_message",
    "check_token",
    "parse_token",
    "sign_token",
]

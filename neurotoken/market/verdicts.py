"""Oracle verdicts for the compute market: the EIP-712 types (defined once), signing,
verification, quorum assembly, a JSON wire format, and the challenge-index derivation.

The contract (`contracts/ComputeMarket.sol`, see IComputeMarket's NatSpec) is the reference;
everything here mirrors it exactly and is tested against its views:

- domain: name "Neurotoken Compute Market", version "1", the chain id, the market address;
- ``Verdict(uint256 jobId,bytes32 resultRoot,bytes32 seed,bool accepted)`` settles one job:
  the verdict names the challenge seed it judged, so it settles only that one draw;
- ``VerdictBatch(Verdict[] verdicts)`` settles many jobs with one signature per oracle;
- a settlement carries >= the job's threshold of signatures by distinct oracles of the job's
  oracle epoch, ascending by signer address; a signature with s in the upper half of the
  curve order (malleable) is refused;
- challenged shards: for c = 0, 1, ... index = keccak256(abi.encode(seed, jobId, c)) mod
  shardCount, skipping repeats, until k distinct indices are drawn (in the order drawn);
  `challenged_indices` delegates to `neurotoken.proofs.challenge`, which defines it.

The oracle service and the provider agent import these; nothing else defines the types.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.datatypes import Signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from neurotoken.eip712 import DOMAIN_TYPEHASH, EIP712_DOMAIN_FIELDS
from neurotoken.errors import NeurotokenError
from neurotoken.proofs.challenge import challenge_indices

DOMAIN_NAME = "Neurotoken Compute Market"
DOMAIN_VERSION = "1"

#: secp256k1 group order; OpenZeppelin ECDSA accepts only s <= N // 2.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

VERDICT_FIELDS: list[dict[str, str]] = [
    {"name": "jobId", "type": "uint256"},
    {"name": "resultRoot", "type": "bytes32"},
    {"name": "seed", "type": "bytes32"},
    {"name": "accepted", "type": "bool"},
]
VERDICT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_FIELDS,
    "Verdict": VERDICT_FIELDS,
}
BATCH_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_FIELDS,
    "VerdictBatch": [{"name": "verdicts", "type": "Verdict[]"}],
    "Verdict": VERDICT_FIELDS,
}

VERDICT_TYPE = "Verdict(uint256 jobId,bytes32 resultRoot,bytes32 seed,bool accepted)"
BATCH_TYPE = "VerdictBatch(Verdict[] verdicts)" + VERDICT_TYPE
VERDICT_TYPEHASH = keccak(text=VERDICT_TYPE)
BATCH_TYPEHASH = keccak(text=BATCH_TYPE)

Kind = Literal["verdict", "batch"]


class VerdictError(NeurotokenError):
    """Base of every error this module raises."""


class InvalidSignatureError(VerdictError):
    """A signature is malformed, malleable or does not recover to the claimed signer."""


class QuorumNotReachedError(VerdictError):
    """Fewer distinct valid oracle signatures than the threshold."""

    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"{have} valid oracle signature(s), {need} needed")
        self.have = have
        self.need = need


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _root(value: bytes | str, what: str = "result root") -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise VerdictError(f"a {what} is 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class MarketDomain:
    """Binds a verdict to one chain and one market contract."""

    chain_id: int
    market: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.market),
        }

    def separator(self) -> bytes:
        """The EIP-712 domain separator, as the contract computes it."""
        return keccak(
            DOMAIN_TYPEHASH
            + keccak(text=DOMAIN_NAME)
            + keccak(text=DOMAIN_VERSION)
            + _word(self.chain_id)
            + bytes(12)
            + bytes.fromhex(to_checksum_address(self.market)[2:])
        )


@dataclass(frozen=True)
class Verdict:
    """An oracle's decision on one job's committed result."""

    job_id: int
    result_root: bytes
    seed: bytes
    """The challenge seed the verdict judged (the contract's `challengeSeed(jobId, seedBlock)`)."""
    accepted: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "result_root", _root(self.result_root))
        object.__setattr__(self, "seed", _root(self.seed, "challenge seed"))

    def message(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "resultRoot": self.result_root,
            "seed": self.seed,
            "accepted": self.accepted,
        }

    def struct_hash(self) -> bytes:
        """hashStruct(Verdict), as `keccak256(abi.encode(VERDICT_TYPEHASH, ...))` on chain."""
        return keccak(
            VERDICT_TYPEHASH
            + _word(self.job_id)
            + self.result_root
            + self.seed
            + _word(int(self.accepted))
        )


def verdict_typed_data(domain: MarketDomain, verdict: Verdict) -> dict[str, Any]:
    """The full EIP-712 message for one job's verdict."""
    return {
        "types": VERDICT_TYPES,
        "primaryType": "Verdict",
        "domain": domain.as_dict(),
        "message": verdict.message(),
    }


def batch_typed_data(domain: MarketDomain, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """The full EIP-712 message for a batch of verdicts (order matters)."""
    if not verdicts:
        raise VerdictError("a batch needs at least one verdict")
    return {
        "types": BATCH_TYPES,
        "primaryType": "VerdictBatch",
        "domain": domain.as_dict(),
        "message": {"verdicts": [v.message() for v in verdicts]},
    }


def batch_struct_hash(verdicts: Sequence[Verdict]) -> bytes:
    """hashStruct(VerdictBatch): the array member is keccak256 of the members' struct hashes."""
    return keccak(BATCH_TYPEHASH + keccak(b"".join(v.struct_hash() for v in verdicts)))


def verdict_digest(domain: MarketDomain, verdict: Verdict) -> bytes:
    """The 32-byte digest an oracle signs for one verdict (the contract's `verdictDigest`)."""
    return keccak(b"\x19\x01" + domain.separator() + verdict.struct_hash())


def batch_digest(domain: MarketDomain, verdicts: Sequence[Verdict]) -> bytes:
    """The 32-byte digest an oracle signs for a batch (the contract's `batchDigest`)."""
    return keccak(b"\x19\x01" + domain.separator() + batch_struct_hash(verdicts))


@dataclass(frozen=True)
class SignedVerdict:
    """One oracle's signature over a single verdict (`kind="verdict"`, one entry) or a batch."""

    domain: MarketDomain
    kind: Kind
    verdicts: tuple[Verdict, ...]
    signer: str
    signature: bytes

    def digest(self) -> bytes:
        if self.kind == "verdict":
            if len(self.verdicts) != 1:
                raise VerdictError("a single verdict signature covers exactly one verdict")
            return verdict_digest(self.domain, self.verdicts[0])
        return batch_digest(self.domain, self.verdicts)

    def verify(self) -> str:
        """Checks the signature as the contract would and that it is `signer`'s; returns it."""
        recovered = recover_signer(self.digest(), self.signature)
        if recovered != to_checksum_address(self.signer):
            raise InvalidSignatureError(
                f"signature recovers to {recovered}, not the claimed signer {self.signer}"
            )
        return recovered

    def to_json(self) -> str:
        """The wire format oracles publish and the settle command reads."""
        return json.dumps(
            {
                "kind": self.kind,
                "chainId": self.domain.chain_id,
                "market": to_checksum_address(self.domain.market),
                "verdicts": [
                    {
                        "jobId": v.job_id,
                        "resultRoot": "0x" + v.result_root.hex(),
                        "seed": "0x" + v.seed.hex(),
                        "accepted": v.accepted,
                    }
                    for v in self.verdicts
                ],
                "signer": to_checksum_address(self.signer),
                "signature": "0x" + self.signature.hex(),
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> SignedVerdict:
        try:
            data = json.loads(text)
            kind = data["kind"]
            if kind not in ("verdict", "batch"):
                raise VerdictError(f"unknown signature kind {kind!r}")
            verdicts = tuple(
                Verdict(
                    int(v["jobId"]),
                    _root(v["resultRoot"]),
                    _root(v["seed"], "challenge seed"),
                    bool(v["accepted"]),
                )
                for v in data["verdicts"]
            )
            return cls(
                domain=MarketDomain(int(data["chainId"]), to_checksum_address(data["market"])),
                kind=kind,
                verdicts=verdicts,
                signer=to_checksum_address(data["signer"]),
                signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VerdictError(f"not a signed verdict: {exc}") from exc


def _signature_bytes(signed: Any) -> bytes:
    return bytes(signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v]))


def sign_verdict(private_key: str | bytes, domain: MarketDomain, verdict: Verdict) -> SignedVerdict:
    """Signs one job's verdict with an oracle key."""
    signed = Account.sign_typed_data(private_key, full_message=verdict_typed_data(domain, verdict))
    return SignedVerdict(
        domain=domain,
        kind="verdict",
        verdicts=(verdict,),
        signer=Account.from_key(private_key).address,
        signature=_signature_bytes(signed),
    )


def sign_batch(
    private_key: str | bytes, domain: MarketDomain, verdicts: Sequence[Verdict]
) -> SignedVerdict:
    """Signs a batch of verdicts (in the order given) with an oracle key."""
    signed = Account.sign_typed_data(private_key, full_message=batch_typed_data(domain, verdicts))
    return SignedVerdict(
        domain=domain,
        kind="batch",
        verdicts=tuple(verdicts),
        signer=Account.from_key(private_key).address,
        signature=_signature_bytes(signed),
    )


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The address that signed `digest`, refusing what OpenZeppelin's ECDSA.recover refuses:
    a length other than 65, s above N/2 (the malleable twin) and v other than 27 or 28."""
    if len(signature) != 65:
        raise InvalidSignatureError(f"a signature is 65 bytes, got {len(signature)}")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if s > SECP256K1_N // 2:
        raise InvalidSignatureError("malleable signature: s is in the upper half of the order")
    if v not in (27, 28):
        raise InvalidSignatureError(f"v must be 27 or 28, got {v}")
    try:
        r = int.from_bytes(signature[:32], "big")
        public_key = Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except Exception as exc:  # eth-keys raises several types for a point off the curve
        raise InvalidSignatureError(f"signature does not recover: {exc}") from exc
    return to_checksum_address(public_key.to_checksum_address())


def recover_typed_data_signer(full_message: dict[str, Any], signature: bytes) -> str:
    """Recovers through eth-account's own EIP-712 encoder (a cross-check of the digests)."""
    return to_checksum_address(
        Account.recover_message(encode_typed_data(full_message=full_message), signature=signature)
    )


def malleate(signature: bytes) -> bytes:
    """The other valid-looking form of a signature: (r, N - s, v flipped). The contract
    rejects it; tests and audits use it to prove so."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def assemble_quorum(
    signed: Iterable[SignedVerdict],
    *,
    oracles: Iterable[str],
    threshold: int,
) -> list[bytes]:
    """The signatures a settlement submits: each verified, only current oracles, one per
    oracle, ascending by signer address; QuorumNotReachedError if fewer than `threshold`.

    All entries must sign the same message; a mismatch is an error, not a silent drop.
    """
    current = {to_checksum_address(o) for o in oracles}
    by_signer: dict[int, bytes] = {}
    digest: bytes | None = None
    for item in signed:
        item_digest = item.digest()
        if digest is None:
            digest = item_digest
        elif item_digest != digest:
            raise VerdictError(f"signature by {item.signer} is over a different message")
        signer = item.verify()
        if signer in current:
            by_signer[int(signer, 16)] = item.signature
    if len(by_signer) < threshold:
        raise QuorumNotReachedError(len(by_signer), threshold)
    return [by_signer[key] for key in sorted(by_signer)]


def challenged_indices(seed: bytes, job_id: int, shard_count: int, k: int) -> list[int]:
    """The k challenged shard indices, in the order drawn, as the contract's
    `challengedShards` / `deriveChallengedShards` computes them. The derivation itself lives
    in `neurotoken.proofs.challenge` (one definition, shared with the verifier)."""
    try:
        return challenge_indices(seed, job_id, shard_count, k)
    except ValueError as exc:
        raise VerdictError(str(exc)) from exc

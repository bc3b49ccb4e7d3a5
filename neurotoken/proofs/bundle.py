"""Proof bundles: the manifest and per-shard inclusion proofs a provider publishes.

A bundle for result root R consists of

* the manifest: canonical JSON with the job id, spec hash, shard count, the leaf values
  (`leaves[i]` = keccak256 of shard i's output bytes, which is also its content address)
  and the root R of `MerkleTree.of_shards(leaves)`;
* shard outputs, stored content-addressed under their keccak256;
* one inclusion proof per shard: `{"index", "leaf", "proof"}` against R.

The bundle also holds the job spec's exact bytes (`spec`, hashing to the spec hash),
so an oracle can judge the job even when the client stops serving its spec.

Nothing in a bundle is trusted: the verifier recomputes R from the manifest's leaves,
checks each proof against the committed root, and hashes every byte it fetches. The
parsers are total: any bytes give a model or a `BundleError`, never another exception.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from neurotoken.errors import InputError
from neurotoken.jobs.canonical import CanonicalJsonError, canonical_json, parse_json
from neurotoken.jobs.spec import MAX_SHARDS
from neurotoken.proofs.merkle import MerkleTree

MANIFEST_FORMAT: Literal["neurotoken-bundle/1"] = "neurotoken-bundle/1"
PROOF_FORMAT: Literal["neurotoken-proof/1"] = "neurotoken-proof/1"
MAX_PROOF_DEPTH = 32
HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
Hex32 = Annotated[str, Field(pattern=HEX32.pattern)]
MAX_MANIFEST_BYTES = 256 + 70 * MAX_SHARDS + 1024
"""The biggest manifest a valid job can have (leaves are 66-character strings plus commas)."""
MAX_PROOF_BYTES = 256 + 70 * MAX_PROOF_DEPTH


class BundleError(InputError):
    """A manifest or proof document that is malformed; `field` names where."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def from_hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Manifest(_Strict):
    format: Literal["neurotoken-bundle/1"]
    job_id: Annotated[int, Field(ge=0, lt=1 << 256)]
    spec_hash: Hex32
    shard_count: Annotated[int, Field(ge=1, le=MAX_SHARDS)]
    leaves: Annotated[list[Hex32], Field(min_length=1, max_length=MAX_SHARDS)]
    """leaves[i] = keccak256 of shard i's output bytes."""
    root: Hex32

    @field_validator("leaves")
    @classmethod
    def _one_per_shard(cls, leaves: list[str], info: ValidationInfo) -> list[str]:
        count = info.data.get("shard_count")
        if isinstance(count, int) and len(leaves) != count:
            raise ValueError(f"{len(leaves)} leaves for {count} shards")
        return leaves

    def leaf_hashes(self) -> list[bytes]:
        return [from_hex(leaf) for leaf in self.leaves]

    def recomputed_root(self) -> bytes:
        return MerkleTree.of_shards(self.leaf_hashes()).root


class InclusionProof(_Strict):
    format: Literal["neurotoken-proof/1"]
    index: Annotated[int, Field(ge=0, lt=MAX_SHARDS)]
    leaf: Hex32
    """keccak256 of the shard's output bytes."""
    proof: Annotated[list[Hex32], Field(max_length=MAX_PROOF_DEPTH)]

    def nodes(self) -> list[bytes]:
        return [from_hex(node) for node in self.proof]


def _first_error(exc: ValidationError, what: str) -> BundleError:
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or what
    return BundleError(f"{what}.{field}", str(first["msg"]).removeprefix("Value error, "))


_M = TypeVar("_M", bound=_Strict)


def _parse(model: type[_M], data: bytes, max_bytes: int, what: str) -> _M:
    """`model` from untrusted bytes; every failure, whatever raised it, is a BundleError."""
    try:
        raw = parse_json(data, max_bytes=max_bytes)
        if not isinstance(raw, dict):
            raise BundleError(what, "not a JSON object")
        return model.model_validate(raw)
    except BundleError:
        raise
    except CanonicalJsonError as exc:
        raise BundleError(what, str(exc)) from None
    except ValidationError as exc:
        raise _first_error(exc, what) from None
    except MemoryError:
        raise  # the reader's own limit
    except Exception as exc:  # a validator tripped by a shape nobody foresaw
        raise BundleError(what, f"unreadable ({type(exc).__name__})") from None


def parse_manifest(data: bytes) -> Manifest:
    """A manifest from untrusted bytes (bounded size; `BundleError` names a bad field)."""
    return _parse(Manifest, data, MAX_MANIFEST_BYTES, "manifest")


def parse_proof(data: bytes) -> InclusionProof:
    """An inclusion proof from untrusted bytes."""
    return _parse(InclusionProof, data, MAX_PROOF_BYTES, "proof")


def manifest_bytes(manifest: Manifest) -> bytes:
    return canonical_json(manifest.model_dump(mode="json"))


def proof_bytes(proof: InclusionProof) -> bytes:
    return canonical_json(proof.model_dump(mode="json"))


def make_manifest(
    job_id: int, spec_hash: bytes, output_hashes: list[bytes]
) -> tuple[Manifest, MerkleTree]:
    """The manifest (and its tree) for a job whose shard i output hashes to output_hashes[i]."""
    tree = MerkleTree.of_shards(output_hashes)
    manifest = Manifest(
        format=MANIFEST_FORMAT,
        job_id=job_id,
        spec_hash=to_hex(spec_hash),
        shard_count=len(output_hashes),
        leaves=[to_hex(h) for h in output_hashes],
        root=to_hex(tree.root),
    )
    return manifest, tree


def make_proofs(manifest: Manifest, tree: MerkleTree) -> list[InclusionProof]:
    return [
        InclusionProof(
            format=PROOF_FORMAT,
            index=i,
            leaf=manifest.leaves[i],
            proof=[to_hex(node) for node in tree.proof(i)],
        )
        for i in range(manifest.shard_count)
    ]

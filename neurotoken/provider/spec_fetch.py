"""Fetching a posted job's spec and checking it against the spec hash on chain.

A spec URI is a file path, a `file://` URI, an `http(s)://` URL or a `data:` URI. The bytes
fetched must hash (keccak256, as they are, the way oracles check them) to the posted spec
hash, parse as a valid spec, and agree with the job's on-chain shard count; otherwise the
job is refused with a reason that says which. Reads are bounded in size and time.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from neurotoken.errors import NeurotokenError
from neurotoken.jobs.canonical import MAX_JSON_BYTES, keccak256
from neurotoken.jobs.data_uri import DataUriError, data_uri_bytes
from neurotoken.jobs.spec import ShelfImagesSpec, SpecError, TrainingSpec, parse_spec

AnySpec = ShelfImagesSpec | TrainingSpec


class Refusal(StrEnum):
    """Why the agent did not take a job. The value is the stable code logged and stored."""

    SPEC_UNAVAILABLE = "SPEC_UNAVAILABLE"
    SPEC_URI_UNSUPPORTED = "SPEC_URI_UNSUPPORTED"
    SPEC_HASH_MISMATCH = "SPEC_HASH_MISMATCH"
    SPEC_INVALID = "SPEC_INVALID"
    KIND_UNKNOWN = "KIND_UNKNOWN"
    KIND_NOT_OFFERED = "KIND_NOT_OFFERED"
    SPEC_UNPAYABLE = "SPEC_UNPAYABLE"
    SHARD_COUNT_MISMATCH = "SHARD_COUNT_MISMATCH"
    TOO_MANY_SHARDS = "TOO_MANY_SHARDS"
    PRICE_TOO_LOW = "PRICE_TOO_LOW"
    COLLATERAL_TOO_HIGH = "COLLATERAL_TOO_HIGH"
    STAKE_TOO_LOW = "STAKE_TOO_LOW"
    DEADLINE_TOO_SOON = "DEADLINE_TOO_SOON"
    ACCEPT_WINDOW_CLOSED = "ACCEPT_WINDOW_CLOSED"
    RESERVED_FOR_OTHER = "RESERVED_FOR_OTHER"
    BUSY = "BUSY"
    REQUEST_INVALID = "REQUEST_INVALID"
    """A quote's request that the market would refuse to post (or that cannot be encoded)."""
    QUOTE_TOO_LONG = "QUOTE_TOO_LONG"
    """A quote's acceptBy further ahead than the policy lets a quote stand."""


TRANSIENT = frozenset({Refusal.SPEC_UNAVAILABLE, Refusal.STAKE_TOO_LOW, Refusal.BUSY})
"""Refusals that may change on a later look (a server back up, stake freed by a settlement)."""


class SpecRefusedError(NeurotokenError):
    """The job's spec is not one the agent will work on; `code` says why."""

    def __init__(self, code: Refusal, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class FetchedSpec:
    raw: bytes
    spec: AnySpec


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def read_spec_bytes(uri: str, timeout_s: float = 10.0, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes behind `uri`, at most `max_bytes`; SpecRefusedError when they cannot be read."""
    too_big = SpecRefusedError(Refusal.SPEC_INVALID, f"spec at {uri!r} is over {max_bytes} bytes")
    if uri.startswith("data:"):
        try:
            raw = data_uri_bytes(uri)
        except DataUriError as exc:
            raise SpecRefusedError(Refusal.SPEC_URI_UNSUPPORTED, str(exc)) from None
        if len(raw) > max_bytes:
            raise too_big
        return raw
    local = _local_path(uri)
    if local is not None:
        try:
            with local.open("rb") as fh:
                raw = fh.read(max_bytes + 1)
        except OSError as exc:
            raise SpecRefusedError(Refusal.SPEC_UNAVAILABLE, f"{local}: {exc.strerror}") from None
        if len(raw) > max_bytes:
            raise too_big
        return raw
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme not in ("http", "https"):
        raise SpecRefusedError(Refusal.SPEC_URI_UNSUPPORTED, f"unsupported scheme {scheme!r}")
    try:
        with urllib.request.urlopen(uri, timeout=timeout_s) as resp:
            raw = bytes(resp.read(max_bytes + 1))
    except urllib.error.HTTPError as exc:
        raise SpecRefusedError(Refusal.SPEC_UNAVAILABLE, f"{uri}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SpecRefusedError(Refusal.SPEC_UNAVAILABLE, f"{uri}: {exc}") from None
    if len(raw) > max_bytes:
        raise too_big
    return raw


def fetch_spec(
    uri: str, expected_hash: bytes, shard_count: int, timeout_s: float = 10.0
) -> FetchedSpec:
    """The spec behind `uri`, checked against the on-chain hash and shard count."""
    return check_spec(read_spec_bytes(uri, timeout_s), expected_hash, shard_count, uri)


def check_spec(raw: bytes, expected_hash: bytes, shard_count: int, where: str) -> FetchedSpec:
    """`raw` as the spec of a job posted with `expected_hash` and `shard_count` (`where` names
    the source in messages); SpecRefusedError says what does not match."""
    actual = keccak256(raw)
    if actual != expected_hash:
        raise SpecRefusedError(
            Refusal.SPEC_HASH_MISMATCH,
            f"the spec at {where!r} hashes to 0x{actual.hex()}, "
            f"but the job was posted with spec hash 0x{expected_hash.hex()}",
        )
    try:
        spec = parse_spec(raw)
    except SpecError as exc:
        code = Refusal.KIND_UNKNOWN if exc.field == "kind" else Refusal.SPEC_INVALID
        raise SpecRefusedError(code, str(exc)) from None
    if spec.shard_count != shard_count:
        raise SpecRefusedError(
            Refusal.SHARD_COUNT_MISMATCH,
            f"the spec has {spec.shard_count} shards, the job on chain {shard_count}",
        )
    return FetchedSpec(raw, spec)

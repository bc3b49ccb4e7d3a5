"""Canonical JSON and keccak256: the byte forms every party hashes.

Canonical JSON here is UTF-8 JSON with sorted keys, no whitespace, ASCII escapes and no
floats (a float's text form is not one-to-one across encoders; integers in fixed units serve).
Two parties that agree on a value therefore agree on its bytes, and on its keccak256.
"""

from __future__ import annotations

import json
from typing import Any

import sha3  # safe-pysha3: ~6x faster than pycryptodome's keccak for short inputs

MAX_JSON_BYTES = 1 << 16
"""The largest job spec accepted, in bytes (specs are small; this bounds parsing work)."""


class CanonicalJsonError(ValueError):
    """A value cannot be written as canonical JSON, or bytes are not acceptable JSON."""


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (not NIST SHA3-256) of `data`."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def _check(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return
    if isinstance(value, float):
        raise CanonicalJsonError(f"{path or 'value'}: floats are not allowed, use integers")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"{path or 'value'}: object keys must be strings")
            _check(item, f"{path}.{key}" if path else key)
        return
    raise CanonicalJsonError(f"{path or 'value'}: {type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """`value` as canonical JSON bytes (sorted keys, compact, ASCII, no floats)."""
    _check(value, "")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in pairs:
        if key in out:
            raise CanonicalJsonError(f"{key}: duplicate key")
        out[key] = item
    return out


def _no_float(text: str) -> Any:
    raise CanonicalJsonError(f"{text}: floats are not allowed, use integers")


def _no_constant(text: str) -> Any:
    raise CanonicalJsonError(f"{text}: not a JSON value")


def parse_json(data: bytes | str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parses JSON strictly: bounded size, no duplicate keys, no floats, no NaN/Infinity."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise CanonicalJsonError(f"document is {len(raw)} bytes, more than {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CanonicalJsonError(f"document is not UTF-8: {exc}") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as exc:
        raise CanonicalJsonError(f"document is not JSON: {exc}") from None
    except RecursionError:
        raise CanonicalJsonError("document nests too deeply") from None

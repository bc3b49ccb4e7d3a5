"""Canonical JSON and keccak256: the byte forms every party hashes.

Canonical JSON here is UTF-8 JSON with sorted keys, no whitespace, ASCII escapes and no
floats (a float's text form is not one-to-one across encoders; integers in fixed units serve).
Two parties that agree on a value therefore agree on its bytes, and on its keccak256.

`parse_json` reads untrusted bytes (specs, manifests, proofs, shard headers) and is total:
whatever the bytes, it returns a value or raises `CanonicalJsonError`, never anything else
(oversized documents, non-UTF-8 bytes, lone surrogates, integers longer than
`MAX_INT_DIGITS` digits, nesting deeper than `MAX_JSON_DEPTH`, duplicate keys, floats, NaN
and Infinity all become `CanonicalJsonError`). Only `MemoryError`, the reader's own limit,
passes through.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sha3  # safe-pysha3: ~6x faster than pycryptodome's keccak for short inputs

from neurotoken.errors import InputError

MAX_JSON_BYTES = 1 << 16
"""The largest job spec accepted, in bytes (specs are small; this bounds parsing work)."""
MAX_INT_DIGITS = 80
"""The longest integer literal accepted (a uint256 has 78 digits); Python's own limit, 4,300
digits, would raise a plain ValueError, and long conversions cost quadratic time."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects accepted. Checked before decoding, without
recursion: the decoder recurses in C, and a process whose recursion limit was raised (some
libraries raise it to 100,000 on import) would overflow its C stack and crash on deep input
instead of raising RecursionError."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class CanonicalJsonError(InputError):
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
    try:
        _check(value, "")
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except RecursionError:
        raise CanonicalJsonError("value nests too deeply") from None
    except CanonicalJsonError:
        raise
    except ValueError as exc:  # an integer over Python's conversion limit
        raise CanonicalJsonError(f"value cannot be written: {exc}") from None
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


def _too_deep(raw: bytes) -> bool:
    """Whether `raw` nests arrays and objects deeper than MAX_JSON_DEPTH (or has brackets
    that do not pair up), found without recursion and in C-speed passes."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):  # each pass removes the innermost level
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    return bool(brackets)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise CanonicalJsonError(f"an integer of {len(text)} digits, more than {MAX_INT_DIGITS}")
    return int(text)


def _check_unicode(value: Any) -> None:
    """Raises CanonicalJsonError if a string in `value` holds a lone surrogate (a `\\ud800`
    escape without its pair): such text has no UTF-8 form, so it can name nothing."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJsonError("document holds a lone surrogate escape") from None
    except RecursionError:
        raise CanonicalJsonError("document nests too deeply") from None


def parse_json(data: bytes | str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parses untrusted JSON strictly (bounded size, UTF-8 without lone surrogates, integers
    of at most MAX_INT_DIGITS digits, no duplicate keys, no floats, no NaN/Infinity).

    Total: every failure is a `CanonicalJsonError` (only MemoryError passes through)."""
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    except UnicodeEncodeError:
        raise CanonicalJsonError("document holds a lone surrogate") from None
    if len(raw) > max_bytes:
        raise CanonicalJsonError(f"document is {len(raw)} bytes, more than {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CanonicalJsonError(f"document is not UTF-8: {exc}") from None
    if _too_deep(raw):
        raise CanonicalJsonError(f"document nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_int=_bounded_int,
            parse_constant=_no_constant,
        )
    except CanonicalJsonError:
        raise
    except json.JSONDecodeError as exc:
        raise CanonicalJsonError(f"document is not JSON: {exc}") from None
    except RecursionError:
        raise CanonicalJsonError("document nests too deeply") from None
    except (ValueError, TypeError) as exc:  # anything else the decoder may raise
        raise CanonicalJsonError(f"document is not JSON: {type(exc).__name__}") from None
    if _SURROGATE_ESCAPE.search(raw):
        _check_unicode(value)
    return value

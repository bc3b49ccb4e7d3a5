"""The shard container: one deterministic byte string per shard output.

    b"NTKSHARD" | header length (uint32, big-endian) | header | array bytes ...

The header is canonical JSON `{"arrays": [{"name", "dtype", "shape"}, ...], "meta": {...}}`;
the arrays follow in that order, C-ordered and little-endian. Equal outputs therefore have
equal bytes and equal hashes. `decode` trusts nothing: sizes, dtypes, shapes and trailing
bytes are all checked, and it raises `ContainerError` (never anything else) on bad input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from neurotoken.errors import InputError
from neurotoken.jobs.canonical import CanonicalJsonError, canonical_json, parse_json

MAGIC = b"NTKSHARD"
MAX_HEADER_BYTES = 1 << 22
DTYPES: dict[str, np.dtype[Any]] = {
    "u1": np.dtype("<u1"),
    "i8": np.dtype("<i8"),
    "f4": np.dtype("<f4"),
}


class ContainerError(InputError):
    """Bytes that are not a well-formed shard container."""


def _code(dtype: np.dtype[Any]) -> str:
    for code, known in DTYPES.items():
        if dtype == known or dtype == known.newbyteorder("="):
            return code
    raise ContainerError(f"dtype {dtype} cannot be stored")


def encode(meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """Container bytes for `meta` (JSON, no floats) and named arrays (u1, i8 or f4)."""
    specs = []
    bodies = []
    for name, array in arrays.items():
        code = _code(array.dtype)
        specs.append({"name": name, "dtype": code, "shape": [int(n) for n in array.shape]})
        bodies.append(np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes())
    header = canonical_json({"arrays": specs, "meta": dict(meta)})
    return MAGIC + len(header).to_bytes(4, "big") + header + b"".join(bodies)


def decode(data: bytes) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """(meta, arrays) from container bytes; `ContainerError` on anything malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ContainerError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) + 4 or not data.startswith(MAGIC):
        raise ContainerError("not a shard container (bad magic or truncated)")
    size = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
    start = len(MAGIC) + 4
    if size > MAX_HEADER_BYTES or start + size > len(data):
        raise ContainerError(f"header length {size} is impossible for {len(data)} bytes")
    try:
        header = parse_json(data[start : start + size], max_bytes=MAX_HEADER_BYTES)
    except CanonicalJsonError as exc:
        raise ContainerError(f"header: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"arrays", "meta"}:
        raise ContainerError("header must be an object with exactly 'arrays' and 'meta'")
    meta, specs = header["meta"], header["arrays"]
    if not isinstance(meta, dict) or not isinstance(specs, list):
        raise ContainerError("header 'meta' must be an object and 'arrays' a list")
    offset = start + size
    arrays: dict[str, npt.NDArray[Any]] = {}
    for spec in specs:
        if not isinstance(spec, dict) or set(spec) != {"name", "dtype", "shape"}:
            raise ContainerError("each array needs exactly name, dtype and shape")
        name, code, shape = spec["name"], spec["dtype"], spec["shape"]
        if not isinstance(name, str) or name in arrays:
            raise ContainerError(f"array name {name!r} is not a new string")
        if not isinstance(code, str) or code not in DTYPES:
            raise ContainerError(f"array {name}: dtype {code!r} is not one of {list(DTYPES)}")
        if (
            not isinstance(shape, list)
            or len(shape) > 6
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        ):
            raise ContainerError(f"array {name}: shape {shape!r} is not a list of sizes")
        count = 1
        for n in shape:
            count *= n
        nbytes = count * DTYPES[code].itemsize
        if offset + nbytes > len(data):
            raise ContainerError(f"array {name}: truncated ({nbytes} bytes declared)")
        try:
            flat = np.frombuffer(data, dtype=DTYPES[code], count=count, offset=offset)
            arrays[name] = flat.reshape(shape)
        except ValueError as exc:
            raise ContainerError(f"array {name}: {exc}") from None
        offset += nbytes
    if offset != len(data):
        raise ContainerError(f"{len(data) - offset} trailing bytes after the arrays")
    return meta, arrays

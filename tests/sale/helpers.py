"""A strict revert check.

`ape.reverts(ErrorClass, **inputs)` (0.8.51) checks nothing when the revert was not decoded as
a custom error of a contract instance (deployments, errors from another contract, errors taken
from a container): the block passes whatever reverted. `reverts` here decodes the revert data
itself and fails unless the error's selector and every given input match.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ape.exceptions import ContractLogicError, CustomError
from eth_abi import decode
from eth_utils import keccak, to_checksum_address


class RevertCapture:
    """What the revert was: its error name and decoded inputs."""

    name: str = ""
    inputs: dict[str, Any]

    def __init__(self) -> None:
        self.inputs = {}


def _normalize(value: Any) -> Any:
    if hasattr(value, "address"):
        value = value.address
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value


def _abi_type(ipt: Any) -> str:
    return str(ipt.canonical_type) if hasattr(ipt, "canonical_type") else str(ipt.type)


@contextmanager
def reverts(expected: Any, **inputs: Any) -> Iterator[RevertCapture]:
    """Asserts the block reverts with custom error `expected` (a class from `contract.Name` or
    `project.Container.Name`) and, for each keyword, that input's value."""
    abi = expected.abi
    signature = f"{abi.name}({','.join(_abi_type(i) for i in abi.inputs)})"
    selector = keccak(text=signature)[:4]
    capture = RevertCapture()
    try:
        yield capture
    except ContractLogicError as exc:
        if isinstance(exc, CustomError):
            capture.name = type(exc).__name__
            capture.inputs = dict(exc.inputs)
            if capture.name != abi.name:
                raise AssertionError(f"expected {abi.name} but the call reverted with {capture.name}") from exc
        else:
            data = exc.revert_message or ""
            raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
            if raw[:4] != selector:
                raise AssertionError(f"expected {signature} but the revert was {data!r}") from exc
            values = decode([_abi_type(i) for i in abi.inputs], raw[4:])
            capture.name = abi.name
            capture.inputs = {i.name: v for i, v in zip(abi.inputs, values, strict=True)}
        wrong = [
            f"{key}: expected {_normalize(value)!r}, got {_normalize(capture.inputs.get(key))!r}"
            for key, value in inputs.items()
            if key not in capture.inputs or _normalize(capture.inputs[key]) != _normalize(value)
        ]
        if wrong:
            raise AssertionError(f"{abi.name} reverted with other inputs: " + "; ".join(wrong)) from exc
    else:
        raise AssertionError(f"expected a revert with {abi.name}, but nothing reverted")

"""Strict revert checks and fast reads.

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
from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from tests.rpc import Rpc


class RevertCapture:
    """What the revert was: its error name, decoded inputs and (if it was mined) its tx hash."""

    name: str = ""
    inputs: dict[str, Any]
    txn_hash: str | None = None

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


def _decode_error(expected: Any, raw: bytes) -> dict[str, Any]:
    abi = expected.abi
    signature = f"{abi.name}({','.join(_abi_type(i) for i in abi.inputs)})"
    if raw[:4] != keccak(text=signature)[:4]:
        raise AssertionError(f"expected {signature} but the revert data was 0x{raw.hex()}")
    values = decode([_abi_type(i) for i in abi.inputs], raw[4:])
    return {i.name: v for i, v in zip(abi.inputs, values, strict=True)}


def _check_inputs(name: str, actual: dict[str, Any], expected: dict[str, Any]) -> None:
    wrong = [
        f"{key}: expected {_normalize(value)!r}, got {_normalize(actual.get(key))!r}"
        for key, value in expected.items()
        if key not in actual or _normalize(actual[key]) != _normalize(value)
    ]
    if wrong:
        raise AssertionError(f"{name} reverted with other inputs: " + "; ".join(wrong))


def check_revert_data(expected: Any, raw: bytes, **inputs: Any) -> None:
    """Asserts that revert data `raw` is custom error `expected` with `inputs`."""
    _check_inputs(expected.abi.name, _decode_error(expected, raw), inputs)


@contextmanager
def reverts(expected: Any, **inputs: Any) -> Iterator[RevertCapture]:
    """Asserts the block reverts with custom error `expected` (a class from `contract.Name` or
    `project.Container.Name`) and, for each keyword, that input's value."""
    name = expected.abi.name
    capture = RevertCapture()
    try:
        yield capture
    except ContractLogicError as exc:
        txn_hash = getattr(getattr(exc, "txn", None), "txn_hash", None)
        capture.txn_hash = txn_hash.hex() if isinstance(txn_hash, bytes) else txn_hash
        if isinstance(exc, CustomError):
            capture.name = type(exc).__name__
            capture.inputs = dict(exc.inputs)
            if capture.name != name:
                raise AssertionError(
                    f"expected {name} but the call reverted with {capture.name}"
                ) from exc
        else:
            data = exc.revert_message or ""
            raw = bytes.fromhex(data[2:]) if data.startswith("0x") else b""
            capture.name, capture.inputs = name, _decode_error(expected, raw)
        _check_inputs(name, capture.inputs, inputs)
    else:
        raise AssertionError(f"expected a revert with {name}, but nothing reverted")


class Query:
    """One read for `FastReader.run`: a JSON-RPC request and how to decode its answer."""

    def __init__(self, method: str, params: list[Any], decode_as: list[str] | None) -> None:
        self.method, self.params, self.decode_as = method, params, decode_as

    def result(self, response: dict[str, Any]) -> Any:
        if "error" in response:
            raise AssertionError(f"{self.method} {self.params} failed: {response['error']}")
        raw = response["result"]
        if self.decode_as is None:
            return int(raw, 16)
        values = decode(self.decode_as, bytes.fromhex(raw[2:]))
        return values[0] if len(values) == 1 else values


class FastReader:
    """Reads in one JSON-RPC batch over a kept-alive connection, bypassing ape's call handlers
    and web3's middleware: for the invariants a state machine checks after every step (dozens
    of reads in ~5 ms instead of ~500 ms), and for trying a call the model says must revert
    without mining it (ape traces every mined revert, which costs a few hundred milliseconds)."""

    def __init__(self, chain: Any) -> None:
        self._rpc = Rpc(str(chain.provider.uri))
        self._abis: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = {}

    def _post(self, payload: Any) -> Any:
        return self._rpc.post(payload)

    def _encode(
        self, contract: Any, method: str, args: tuple[Any, ...]
    ) -> tuple[str, str, list[str]]:
        key = (str(contract.address), method)
        if key not in self._abis:
            abi = getattr(contract, method).abis[0]
            types_in = [_abi_type(i) for i in abi.inputs]
            selector = keccak(text=f"{method}({','.join(types_in)})")[:4]
            self._abis[key] = (selector, types_in, [_abi_type(o) for o in abi.outputs])
        selector, types_in, types_out = self._abis[key]
        data = selector + encode(types_in, [_normalize(a) for a in args])
        return key[0], "0x" + data.hex(), types_out

    def call(self, contract: Any, method: str, *args: Any) -> Query:
        to, data, types_out = self._encode(contract, method, args)
        return Query("eth_call", [{"to": to, "data": data}, "latest"], types_out)

    def balance_of(self, address: Any) -> Query:
        return Query("eth_getBalance", [_normalize(address), "latest"], None)

    def run(self, *queries: Query) -> list[Any]:
        """Runs `queries` in one batch; their results in order."""
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": q.method, "params": q.params}
            for i, q in enumerate(queries)
        ]
        responses = {r["id"]: r for r in self._post(payload)}
        return [q.result(responses[i]) for i, q in enumerate(queries)]

    def __call__(self, contract: Any, method: str, *args: Any) -> Any:
        return self.run(self.call(contract, method, *args))[0]

    def balance(self, address: Any) -> int:
        result: int = self.run(self.balance_of(address))[0]
        return result

    def expect_revert(
        self,
        expected: Any,
        contract: Any,
        method: str,
        *args: Any,
        sender: Any,
        value: int = 0,
        **inputs: Any,
    ) -> None:
        """Asserts that `method(*args)` sent by `sender` with `value` reverts with `expected`."""
        to, data, _ = self._encode(contract, method, args)
        params = {"from": _normalize(sender), "to": to, "data": data, "value": hex(value)}
        response = self._post(
            {"jsonrpc": "2.0", "id": 0, "method": "eth_call", "params": [params, "latest"]}
        )
        if "error" not in response:
            raise AssertionError(
                f"expected {method} to revert with {expected.abi.name}, but it succeeded"
            )
        raw = response["error"].get("data") or "0x"
        check_revert_data(expected, bytes.fromhex(raw[2:]), **inputs)

"""One decoder for the reverts of every contract the project talks to.

Built from ABIs (ape's build manifest, or ape contract types), it turns revert data into the
custom error's name and its arguments. It never raises: data that is not a known error (or
is malformed) decodes to None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import is_address, to_checksum_address
from hexbytes import HexBytes

_BUILTIN = {
    bytes.fromhex("08c379a0"): ("Error", ("string",), ("reason",)),
    bytes.fromhex("4e487b71"): ("Panic", ("uint256",), ("code",)),
}


@dataclass(frozen=True)
class DecodedError:
    """A custom error (or Solidity's Error / Panic) and its arguments, by name."""

    name: str
    args: dict[str, Any]

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.name}({inner})"


def abi_type(item: dict[str, Any]) -> str:
    """The canonical ABI type of an ABI input (tuples spelled out)."""
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind


def plain(value: Any, *, hex_bytes: bool = False) -> Any:
    """A decoded ABI value with plain Python types: checksummed addresses, bytes (or 0x hex
    when `hex_bytes`, for JSON), lists for arrays and tuples."""
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex() if hex_bytes else bytes(value)
    if isinstance(value, str) and is_address(value):
        return to_checksum_address(value)
    if isinstance(value, list | tuple):
        return [plain(v, hex_bytes=hex_bytes) for v in value]
    return value


def raw_bytes(data: Any) -> bytes | None:
    """Revert data as bytes, from bytes, 0x hex or a JSON-RPC error's `data` field."""
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str):
        try:
            return bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return None
    if isinstance(data, bytes | bytearray | HexBytes):
        return bytes(data)
    return None


class ErrorDecoder:
    """Selector -> error table over one or more ABIs (JSON ABI lists)."""

    def __init__(self, *abis: list[dict[str, Any]], hex_bytes: bool = False) -> None:
        self.hex_bytes = hex_bytes
        self._table: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = dict(_BUILTIN)
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                inputs = item.get("inputs", [])
                types = tuple(abi_type(i) for i in inputs)
                selector = function_signature_to_4byte_selector(
                    f"{item['name']}({','.join(types)})"
                )
                names = tuple(str(i.get("name") or f"arg{n}") for n, i in enumerate(inputs))
                self._table[selector] = (str(item["name"]), types, names)

    @classmethod
    def from_contract_types(cls, *contract_types: Any, hex_bytes: bool = False) -> ErrorDecoder:
        """From ape contract types (`project.X.contract_type`, `instance.contract_type`)."""
        abis = [ct.model_dump(mode="json", by_alias=True)["abi"] for ct in contract_types]
        return cls(*abis, hex_bytes=hex_bytes)

    def decode(self, data: Any) -> DecodedError | None:
        """The error in revert `data` (bytes, hex or an RPC error dict), or None."""
        raw = raw_bytes(data)
        if raw is None or len(raw) < 4:
            return None
        entry = self._table.get(raw[:4])
        if entry is None:
            return None
        name, types, names = entry
        try:
            values = abi_decode(list(types), raw[4:])
        except Exception:  # malformed arguments: the name is still worth reporting
            return DecodedError(name, {})
        args = {n: plain(v, hex_bytes=self.hex_bytes) for n, v in zip(names, values, strict=True)}
        return DecodedError(name, args)

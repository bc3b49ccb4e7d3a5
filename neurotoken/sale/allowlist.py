"""The presale allow-list: a Merkle tree of addresses, compatible with @openzeppelin/merkle-tree.

The tree is the npm package's `StandardMerkleTree.of(values, ["address"])`, node for node:
leaves are `keccak256(keccak256(abi.encode(address)))`, sorted; pairs are hashed sorted; the
tree is stored as an array with the root at index 0 and the leaves at the end in reverse order.
`dump()` writes the package's `standard-v1` JSON, so a web front end can
`StandardMerkleTree.load(json)` it and ask for proofs; the contract checks a proof with
OpenZeppelin's `MerkleProof` against the same leaf.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cchecksum import to_checksum_address
from eth_utils.address import is_hex_address

from neurotoken.errors import InputError
from neurotoken.jobs.canonical import keccak256
from neurotoken.proofs.merkle import MerkleTree, hash_pair, process_proof, proof_in_tree

FORMAT = "standard-v1"
LEAF_ENCODING = ["address"]


class AllowlistError(InputError):
    """A problem with an allow-list file or an address; the message says what to do."""


class NotAllowlistedError(AllowlistError):
    """The address is not on the allow-list."""

    def __init__(self, address: str, source: str) -> None:
        super().__init__(
            f"{address} is not on the presale allow-list ({source}). Ask the sale operator to "
            "add it (a new list means a new sale deployment, since the root is fixed), or wait "
            "for the public ICO, which needs no proof."
        )
        self.address = address


def leaf_hash(address: str) -> bytes:
    """The standard-tree leaf of an `address` value: keccak256(keccak256(abi.encode(addr)))."""
    raw = bytes.fromhex(address[2:] if address[:2] in ("0x", "0X") else address)
    if len(raw) != 20:
        raise AllowlistError(f"{address!r} is not an address (expected 0x and 40 hex digits)")
    return keccak256(keccak256(b"\x00" * 12 + raw))


def verify(root: bytes, address: str, proof: Sequence[bytes | str]) -> bool:
    """Whether `proof` places `address` under `root` (what the contract checks)."""
    return process_proof(leaf_hash(address), [_as_bytes(p) for p in proof]) == root


def _csv_text(path: Path, raw: bytes) -> str:
    """The CSV's text: UTF-8 (with or without a byte-order mark) or UTF-16 with one (what
    spreadsheets write as "Unicode text"); anything else is refused with what to do."""
    utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))  # a byte-order mark
    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise AllowlistError(
            f"{path} is not UTF-8 or UTF-16 text: save it as CSV (UTF-8) and try again"
        ) from None


@dataclass(frozen=True)
class Allowlist:
    """An allow-list tree: `tree[0]` is the root; `index[address]` is the address's tree index."""

    tree: tuple[bytes, ...]
    addresses: tuple[str, ...]
    tree_indices: tuple[int, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(self.addresses)})

    @classmethod
    def build(cls, addresses: Iterable[str]) -> Allowlist:
        """The tree of `addresses` (checksummed, in the given order for `values`)."""
        values = [_checksum(a, f"entry {i + 1}") for i, a in enumerate(addresses)]
        if not values:
            raise AllowlistError("the allow-list is empty: give at least one address")
        seen: dict[str, int] = {}
        for i, address in enumerate(values):
            if address in seen:
                raise AllowlistError(
                    f"{address} is listed twice (entries {seen[address] + 1} and {i + 1}); "
                    "remove the duplicate"
                )
            seen[address] = i
        tree = MerkleTree([leaf_hash(a) for a in values])
        tree_indices = tuple(tree.tree_index(i) for i in range(len(values)))
        return cls(tuple(tree.nodes), tuple(values), tree_indices)

    @classmethod
    def from_csv(cls, path: Path) -> Allowlist:
        """Reads addresses from the first column of a CSV file.

        Blank lines and lines starting with '#' are skipped, and so is a first row whose
        first cell is not an address (a header such as 'address').
        """
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise AllowlistError(f"cannot read the allow-list CSV {path}: {exc.strerror}") from exc
        text = _csv_text(path, raw)
        addresses: list[str] = []
        first_row = True
        for line_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cell = row[0].strip() if row else ""
            if not cell or cell.startswith("#"):
                continue
            if first_row and not is_hex_address(cell) and not cell.lower().startswith("0x"):
                first_row = False
                continue  # a header row such as 'address'
            first_row = False
            where = f"{path}:{line_no}"
            extra = [c for c in row[1:] if c.strip()]
            if extra:
                raise AllowlistError(
                    f"{where}: one address per line, nothing after it (found {len(extra)} more "
                    "column(s)): a second column often means the wrong file or a shifted sheet"
                )
            addresses.append(_checksum(cell, where))
        if not addresses:
            raise AllowlistError(f"{path} lists no addresses: put one address per line")
        return cls.build(addresses)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Allowlist:
        """Reads a `standard-v1` dump (ours or the npm package's) and checks every node."""
        if data.get("format") != FORMAT:
            raise AllowlistError(
                f"unknown allow-list format {data.get('format')!r}; expected {FORMAT!r}"
            )
        if data.get("leafEncoding") != LEAF_ENCODING:
            encoding = data.get("leafEncoding")
            raise AllowlistError(
                f"allow-list leaves are {encoding!r}; the sale needs {LEAF_ENCODING!r}"
            )
        try:
            tree = tuple(_as_bytes(node) for node in data["tree"])
            addresses = tuple(_checksum(v["value"][0], "allow-list value") for v in data["values"])
            tree_indices = tuple(int(v["treeIndex"]) for v in data["values"])
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise AllowlistError(f"malformed allow-list file: {exc}") from exc
        out = cls(tree, addresses, tree_indices)
        out.validate()
        return out

    @classmethod
    def read(cls, path: Path) -> Allowlist:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise AllowlistError(f"cannot read the allow-list file {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise AllowlistError(
                f"{path} is not JSON ({exc}); make it with 'ape run sale allowlist'"
            ) from exc
        return cls.load(data)

    @property
    def root(self) -> bytes:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.addresses)

    def __contains__(self, address: object) -> bool:
        return (
            isinstance(address, str)
            and is_hex_address(address)
            and self._lookup(address) is not None
        )

    def proof(self, address: str, source: str = "the allow-list") -> list[bytes]:
        """The Merkle proof of `address`, or NotAllowlistedError."""
        index = self._lookup(address)
        if index is None:
            raise NotAllowlistedError(to_checksum_address(address), source)
        return proof_in_tree(self.tree, self.tree_indices[index])

    def proofs(self) -> dict[str, list[str]]:
        """Every address's proof, as hex strings."""
        return {a: [_hex(p) for p in self.proof(a)] for a in self.addresses}

    def validate(self) -> None:
        n = len(self.tree)
        if n == 0 or n != 2 * len(self.addresses) - 1:
            raise AllowlistError(f"allow-list tree has {n} nodes for {len(self.addresses)} values")
        for i, node in enumerate(self.tree):
            if len(node) != 32:
                raise AllowlistError(f"allow-list node {i} is not 32 bytes")
            if 2 * i + 2 < n and node != hash_pair(self.tree[2 * i + 1], self.tree[2 * i + 2]):
                raise AllowlistError(
                    f"allow-list node {i} does not match its children: the file was altered"
                )
        for address, tree_index in zip(self.addresses, self.tree_indices, strict=True):
            if not (0 <= tree_index < n) or 2 * tree_index + 1 < n:
                raise AllowlistError(
                    f"allow-list value {address} points at node {tree_index}, not a leaf"
                )
            if self.tree[tree_index] != leaf_hash(address):
                raise AllowlistError(
                    f"allow-list leaf of {address} does not match: the file was altered"
                )

    def dump(self) -> dict[str, Any]:
        """The npm package's `StandardMerkleTree.dump()` of this tree."""
        return {
            "format": FORMAT,
            "leafEncoding": list(LEAF_ENCODING),
            "tree": [_hex(node) for node in self.tree],
            "values": [
                {"value": [a], "treeIndex": i}
                for a, i in zip(self.addresses, self.tree_indices, strict=True)
            ],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.dump(), indent=2) + "\n")
        tmp.replace(path)

    def _lookup(self, address: str) -> int | None:
        try:
            return self._index.get(to_checksum_address(address))
        except ValueError:
            return None


def write_proofs(allowlist: Allowlist, path: Path) -> None:
    """Writes `{"root": ..., "proofs": {address: [hex, ...]}}`, a flat file for scripts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"root": _hex(allowlist.root), "proofs": allowlist.proofs()}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _checksum(value: Any, where: str) -> str:
    """`value` checksummed; refuses what is not an address, a mixed-case address whose EIP-55
    checksum is wrong (a typo, most likely), and the zero address (nobody holds its key)."""
    if not isinstance(value, str) or not is_hex_address(value.strip()):
        raise AllowlistError(
            f"{where}: {value!r} is not an address (expected 0x and 40 hex digits)"
        )
    text = value.strip()
    digits = text[2:]
    if digits not in (digits.lower(), digits.upper()) and to_checksum_address(text) != text:
        raise AllowlistError(
            f"{where}: {text} has a wrong EIP-55 checksum (its mixed case says it was mistyped); "
            f"check the address"
        )
    address = to_checksum_address(text)
    if int(address, 16) == 0:
        raise AllowlistError(f"{where}: the zero address cannot buy; remove it")
    return address


def _as_bytes(value: bytes | str) -> bytes:
    if isinstance(value, bytes):
        if len(value) != 32:
            raise AllowlistError(f"proof node {value.hex()} is not 32 bytes")
        return value
    text = value[2:] if value.startswith("0x") else value
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise AllowlistError(f"proof node {value} is not 32 bytes")
    return raw


def _hex(node: bytes) -> str:
    return "0x" + node.hex()

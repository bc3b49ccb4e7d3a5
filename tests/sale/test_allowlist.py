"""The allow-list tree: byte-for-byte the npm @openzeppelin/merkle-tree standard tree, and the
proofs the sale contract accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from neurotoken.sale.allowlist import (
    Allowlist,
    AllowlistError,
    NotAllowlistedError,
    leaf_hash,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = [f"0x{(i * 0x9E3779B97F4A7C15 + 7) % 2**160:040x}" for i in range(37)]

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def node(script: str, stdin: Any) -> Any:
    """Runs `script` with the npm package loaded as `M`, the JSON `stdin` as `input`."""
    program = (
        "const {StandardMerkleTree: M} = require('@openzeppelin/merkle-tree');"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        f"const out = (() => {{ {script} }})();"
        "process.stdout.write(JSON.stringify(out));"
    )
    done = subprocess.run(
        ["node", "-e", program],
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dump__loads_in_the_npm_package_with_the_same_root_and_proofs() -> None:
    tree = Allowlist.build(ADDRESSES)
    out = node(
        "const t = M.load(input); t.validate();"
        "return {root: t.root, proofs: input.values.map(v => t.getProof(v.value))};",
        tree.dump(),
    )
    assert out["root"] == "0x" + tree.root.hex()
    assert out["proofs"] == [["0x" + p.hex() for p in tree.proof(a)] for a in tree.addresses]


@pytest.mark.parametrize("count", [1, 2, 37])
def test_build__equals_the_npm_package_node_for_node(count: int) -> None:
    tree = Allowlist.build(ADDRESSES[:count])
    theirs = node("return M.of(input.map(a => [a]), ['address']).dump();", list(tree.addresses))
    assert theirs == tree.dump()


def test_load__reads_a_dump_made_by_the_npm_package() -> None:
    theirs = node("return M.of(input.map(a => [a]), ['address']).dump();", ADDRESSES[:9])
    tree = Allowlist.load(theirs)
    assert tree == Allowlist.build(ADDRESSES[:9])


def test_proof__verifies_and_fails_for_another_address() -> None:
    tree = Allowlist.build(ADDRESSES)
    proof = tree.proof(ADDRESSES[5])
    assert verify(tree.root, ADDRESSES[5], proof)
    assert not verify(tree.root, ADDRESSES[6], proof)


def test_proof__of_an_address_not_listed__says_what_to_do() -> None:
    tree = Allowlist.build(ADDRESSES)
    with pytest.raises(NotAllowlistedError, match="Ask the sale operator"):
        tree.proof("0x" + "ab" * 20)


def test_load__of_an_altered_tree__is_refused() -> None:
    dump = Allowlist.build(ADDRESSES).dump()
    dump["tree"][3] = "0x" + "00" * 32
    with pytest.raises(AllowlistError, match="altered"):
        Allowlist.load(dump)


def test_load__of_another_leaf_encoding__is_refused() -> None:
    dump = Allowlist.build(ADDRESSES).dump()
    dump["leafEncoding"] = ["address", "uint256"]
    with pytest.raises(AllowlistError, match="leaves are"):
        Allowlist.load(dump)


def test_from_csv__skips_header_comments_and_blanks_and_checksums(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    shouting = "0x" + ADDRESSES[1][2:].upper()
    csv.write_text(f"address\n# the first wave\n\n{ADDRESSES[0]}\n{shouting}\n")
    tree = Allowlist.from_csv(csv)
    assert tree.addresses == (to_checksum_address(ADDRESSES[0]), to_checksum_address(ADDRESSES[1]))
    assert ADDRESSES[1] in tree


def test_from_csv__with_a_bad_address__names_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text(f"{ADDRESSES[0]}\n0x1234\n")
    with pytest.raises(AllowlistError, match=r"list\.csv:2: '0x1234' is not an address"):
        Allowlist.from_csv(csv)


def test_from_csv__with_a_duplicate__names_both_entries(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text(f"{ADDRESSES[0]}\n{ADDRESSES[1]}\n{ADDRESSES[0].lower()}\n")
    with pytest.raises(AllowlistError, match="listed twice"):
        Allowlist.from_csv(csv)


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("{good},vip", r"list\.csv:2: one address per line, nothing after it"),
        ("{typo}", r"list\.csv:2: .* has a wrong EIP-55 checksum"),
        ("0x" + "0" * 40, r"list\.csv:2: the zero address cannot buy"),
    ],
)
def test_from_csv__a_row_that_is_probably_a_mistake__is_refused_with_its_line(
    tmp_path: Path, row: str, said: str
) -> None:
    good = to_checksum_address(ADDRESSES[1])
    # flip the case of the first letter in the address: a checksum a typo would break
    i = next(n for n, c in enumerate(good) if n > 1 and c.isalpha())
    typo = good[:i] + good[i].swapcase() + good[i + 1 :]
    csv = tmp_path / "list.csv"
    csv.write_text(f"{ADDRESSES[0]}\n{row.format(good=good, typo=typo)}\n")
    with pytest.raises(AllowlistError, match=said):
        Allowlist.from_csv(csv)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_from_csv__as_a_spreadsheet_saves_it__is_read(tmp_path: Path, encoding: str) -> None:
    csv = tmp_path / "list.csv"
    csv.write_bytes(f"address\r\n{ADDRESSES[0]}\r\n".encode(encoding))
    assert Allowlist.from_csv(csv).addresses == (to_checksum_address(ADDRESSES[0]),)


def test_from_csv__not_text__says_to_save_it_as_utf8(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")
    with pytest.raises(AllowlistError, match=r"not UTF-8 or UTF-16 text: save it as CSV"):
        Allowlist.from_csv(csv)


def test_from_csv__empty__is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("address\n")
    with pytest.raises(AllowlistError, match="lists no addresses"):
        Allowlist.from_csv(csv)


def test_leaf_hash__is_the_contracts_leaf(project: Any, owner: Any) -> None:
    # The sale's isAllowlisted with an empty proof compares the leaf with the root.
    address = ADDRESSES[3]
    single = Allowlist.build([address])
    assert single.root == leaf_hash(address)
    assert single.proof(address) == []


def test_sale__accepts_a_proof_from_a_65536_address_list(
    project: Any, owner: Any, make_terms: Any, carol: Any, erin: Any
) -> None:
    buyer = carol
    addresses = [f"0x{0x5EED0000 + i:040x}" for i in range(65_535)] + [buyer.address]
    tree = Allowlist.build(addresses)
    token = project.NeuroToken.deploy(owner, sender=owner)
    terms = make_terms(token=token.address, allowlist_root=tree.root)
    sale = project.TokenSale.deploy(terms.as_tuple(), owner, sender=owner)
    proof = tree.proof(buyer.address)
    assert len(proof) == 16
    assert sale.isAllowlisted(buyer, proof)
    assert not sale.isAllowlisted(erin, proof)

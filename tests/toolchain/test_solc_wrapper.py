"""The npm-solc wrapper speaks the native solc command line that py-solc-x and slither use."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = json.loads((ROOT / "node_modules" / "solc" / "package.json").read_text())["version"]
SOLC = Path(os.environ.get("SOLCX_BINARY_PATH", ROOT / ".solcx")) / f"solc-v{VERSION}"
PYSOLCX_VERSION_REGEX = r"(\d+\.\d+\.\d+)(?:-nightly.\d+.\d+.\d+|)(\+commit.\w+)"

GOOD = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract A { uint256 public x; }\n"
)
BROKEN = "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract B { uint256 x = ; }\n"


def run(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SOLC), *args], input=stdin, capture_output=True, text=True, cwd=cwd, check=False
    )


def standard_input(sources: dict[str, str], outputs: list[str]) -> str:
    return json.dumps(
        {
            "language": "Solidity",
            "sources": {name: {"content": text} for name, text in sources.items()},
            "settings": {"outputSelection": {"*": {"*": outputs, "": ["ast"]}}},
        }
    )


def test_version__is_in_the_native_format_py_solc_x_parses() -> None:
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("solc, the solidity compiler commandline interface\nVersion: ")
    match = re.search(PYSOLCX_VERSION_REGEX, out.stdout)
    assert match is not None and match.group(1) == VERSION


def test_standard_json__output_over_64_kib_arrives_whole_through_a_pipe() -> None:
    token = (ROOT / "contracts" / "NeuroToken.sol").read_text()
    text = standard_input(
        {"NeuroToken.sol": token.replace("./interfaces/", "contracts/interfaces/")},
        ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers", "metadata"],
    )
    out = run(
        "--standard-json", "--base-path", str(ROOT),
        "--include-path", str(ROOT / "node_modules"), stdin=text,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(out.stdout) > 64 * 1024
    result = json.loads(out.stdout)  # would fail on a truncated document
    assert not [e for e in result.get("errors", []) if e["severity"] == "error"]
    assert "NeuroToken" in result["contracts"]["NeuroToken.sol"]


def test_standard_json__compile_error_is_reported_in_the_json_like_solc() -> None:
    out = run("--standard-json", stdin=standard_input({"B.sol": BROKEN}, ["abi"]))
    assert out.returncode == 0  # native solc: errors travel inside the JSON
    errors = json.loads(out.stdout)["errors"]
    assert errors[0]["severity"] == "error"
    assert errors[0]["type"] == "ParserError"
    assert "B.sol:3:" in errors[0]["formattedMessage"]


def test_standard_json__malformed_input_is_a_json_error() -> None:
    out = run("--standard-json", stdin="{not json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["errors"][0]["type"] == "JSONError"


def test_standard_json__imports_resolve_under_base_then_include_paths(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "L.sol").write_text(GOOD.replace("contract A", "contract L"))
    main = (
        '// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\nimport "L.sol";\n'
        "contract M is L {}\n"
    )
    out = run(
        "--standard-json", "--base-path", str(tmp_path), "--include-path", str(tmp_path / "lib"),
        stdin=standard_input({"M.sol": main}, ["abi"]),
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert not result.get("errors"), result.get("errors")
    assert set(result["contracts"]) == {"M.sol", "L.sol"}


def test_combined_json__gives_what_slither_reads(tmp_path: Path) -> None:
    (tmp_path / "A.sol").write_text(GOOD)
    fields = "abi,ast,bin,bin-runtime,srcmap,srcmap-runtime,userdoc,devdoc,hashes"
    out = run("A.sol", "--combined-json", fields, "--allow-paths", ".", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    contract = result["contracts"]["A.sol:A"]
    assert contract["abi"][0]["name"] == "x"
    assert contract["bin"] and contract["bin-runtime"]
    assert contract["hashes"] == {"x()": "0c55699c"}
    assert result["sourceList"] == ["A.sol"]
    assert result["sources"]["A.sol"]["AST"]["nodeType"] == "SourceUnit"


def test_combined_json__remapping_resolves_openzeppelin(tmp_path: Path) -> None:
    src = (
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\n"
        'import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";\n'
        'contract T is ERC20 { constructor() ERC20("t", "t") {} }\n'
    )
    (tmp_path / "T.sol").write_text(src)
    remap = f"@openzeppelin/contracts/={ROOT}/node_modules/@openzeppelin/contracts/"
    out = run(remap, "T.sol", "--combined-json", "abi,bin", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "T.sol:T" in json.loads(out.stdout)["contracts"]


def test_combined_json__compile_error_exits_1_with_solc_message(tmp_path: Path) -> None:
    (tmp_path / "B.sol").write_text(BROKEN)
    out = run("B.sol", "--combined-json", "abi", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stdout == ""
    assert "ParserError" in out.stderr and "B.sol:3:" in out.stderr


@pytest.mark.parametrize("args", [["--frobnicate"], ["A.sol", "--combined-json", "nonsense"]])
def test_bad_command_line__exits_non_zero_with_a_message(args: list[str]) -> None:
    out = run(*args)
    assert out.returncode != 0
    assert out.stderr.strip()


# The second compiler (issue 14): solc 0.8.19 from the npm alias `solc-0.8.19`, for the
# Chainlink reference, behind the same wrapper.
OLD_VERSION = json.loads((ROOT / "node_modules" / "solc-0.8.19" / "package.json").read_text())[
    "version"
]
OLD_SOLC = SOLC.parent / f"solc-v{OLD_VERSION}"


def evm_version_compiled_for(solc: Path, evm_version: str) -> str:
    text = json.loads(standard_input({"A.sol": GOOD}, ["metadata"]))
    text["settings"]["evmVersion"] = evm_version
    out = subprocess.run(
        [str(solc), "--standard-json"], input=json.dumps(text), capture_output=True, text=True,
        cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert not [e for e in result.get("errors", []) if e["severity"] == "error"], result
    metadata = json.loads(result["contracts"]["A.sol"]["A"]["metadata"])
    evm: str = metadata["settings"]["evmVersion"]
    return evm


def test_second_compiler__is_installed_beside_the_first_and_answers_its_own_version() -> None:
    assert OLD_VERSION == "0.8.19"
    out = subprocess.run([str(OLD_SOLC), "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    match = re.search(PYSOLCX_VERSION_REGEX, out.stdout)
    assert match is not None and match.group(1) == OLD_VERSION
    assert (SOLC.parent / "solc").resolve() == SOLC.resolve()  # `solc` stays the project's


def test_second_compiler__an_evm_it_does_not_know_is_compiled_for_its_newest() -> None:
    # ape-config.yaml's `prague` reaches every compiler; solc 0.8.19 knows up to `paris`.
    assert evm_version_compiled_for(OLD_SOLC, "prague") == "paris"
    assert evm_version_compiled_for(OLD_SOLC, "london") == "london"


def test_first_compiler__compiles_for_the_evm_asked_for() -> None:
    assert evm_version_compiled_for(SOLC, "prague") == "prague"

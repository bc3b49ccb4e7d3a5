"""A client's spec commands: `python -m neurotoken.client spec new|check` (issue 15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from neurotoken.client.__main__ import main
from neurotoken.jobs import keccak256, parse_spec, spec_hash, verification_cost


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_new_shelf__writes_the_canonical_spec_and_its_hash_and_cost(tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    code, output = run("spec", "new", "shelf", "--shards", "16", "--seed", "7", "--out", str(out))
    assert code == 0, output
    shown = json.loads(output)
    spec = parse_spec(out.read_bytes())
    assert shown["hash"] == "0x" + keccak256(out.read_bytes()).hex() == "0x" + spec_hash(spec).hex()
    cost = verification_cost(spec, 8)
    assert shown["verification"]["result_bytes"] == cost.result_bytes
    assert (shown["shards"], shown["challenges"], shown["problems"]) == (16, 8, [])


def test_new_training__is_fixed_point_and_payable(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    code, output = run("spec", "new", "training", "--segments", "12", "--out", str(out))
    assert code == 0, output
    assert json.loads(out.read_text())["arithmetic"] == "fixed-point"
    assert json.loads(output)["problems"] == []


def test_check__more_challenges_than_shards__exit_1_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    assert run("spec", "new", "shelf", "--shards", "16", "--out", str(out))[0] == 0
    code, output = run("spec", "check", str(out), "--challenges", "70")
    assert code == 1
    assert json.loads(output)["problems"] == [
        "70 challenged shards: a job of 16 shards needs 1 to 16"
    ]


def test_check__a_spec_not_in_canonical_form__its_hash_would_not_match(tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    assert (
        run("spec", "new", "shelf", "--shards", "4", "--challenges", "2", "--out", str(out))[0] == 0
    )
    out.write_text(json.dumps(json.loads(out.read_text()), indent=2))
    code, output = run("spec", "check", str(out), "--challenges", "2")
    assert code == 1 and "not in canonical form" in output


def test_bad_values__one_line_exit_1_as_a_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "neurotoken.client", "spec", "new", "shelf", "--shards", "0",
         "--out", str(tmp_path / "x.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: job spec field 'shard_count': Input should be greater than or equal to 1"
    )
    assert not (tmp_path / "x.json").exists()

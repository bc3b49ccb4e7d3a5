"""The soak campaigns' records (tests/soak.py) and RELIABILITY.md written from them
(tools/reliability.py): a campaign that injected fewer than it asked fails and is written
as FAILED; the size knob refuses what is not a positive number."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from oracle.settings import REPO_ROOT
from tests import soak

sys.path.insert(0, str(REPO_ROOT / "tools"))
import reliability


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "soak"
    monkeypatch.setattr(soak, "SOAK_DIR", folder)
    monkeypatch.setenv("NEUROTOKEN_SOAK_COMMAND", "make soak SOAK_SIZE=1")
    return folder


def test_campaign__every_count_reached__recorded_passed_with_its_load(records: Path) -> None:
    campaign = soak.Campaign("kills", "Kills")
    campaign.figure("sigkills", 100, 100)
    campaign.figure("jobs", 7)
    campaign.note("invariants held")
    campaign.report()
    record = json.loads((records / "kills.json").read_text())
    assert record["passed"] is True
    assert record["figures"] == {
        "sigkills": {"got": 100, "asked": 100},
        "jobs": {"got": 7, "asked": None},
    }
    assert record["command"] == "make soak SOAK_SIZE=1"
    assert isinstance(record["load"], float) and record["load"] >= 0


def test_campaign__one_count_short__recorded_failed_and_the_test_fails(records: Path) -> None:
    campaign = soak.Campaign("kills", "Kills")
    campaign.figures_from({"dropped": 99, "delayed": 300}, {"dropped": 100, "delayed": 100})
    with pytest.raises(
        AssertionError, match=r"injected fewer than asked: \{'dropped': '99 < 100'\}"
    ):
        campaign.report()
    assert json.loads((records / "kills.json").read_text())["passed"] is False


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "lots"])
def test_size__not_a_positive_number__refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTOKEN_SOAK_SIZE", raw)
    with pytest.raises(ValueError, match="NEUROTOKEN_SOAK_SIZE must be"):
        soak.scaled(100)


def test_size__scales_every_count_never_below_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTOKEN_SOAK_SIZE", "0.1")
    assert (soak.scaled(100), soak.scaled(5), soak.scaled(1)) == (10, 1, 1)
    monkeypatch.delenv("NEUROTOKEN_SOAK_SIZE")
    assert soak.scaled(200) == 200


def test_reliability__writes_each_record__and_fails_when_one_failed(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    base = {"size": 1.0, "seconds": 61.9, "finished": "2026-11-30 08:59:44 UTC", "notes": []}
    passed = {**base, "campaign": "reorgs", "title": "Reorgs", "command": "make soak", "load": 3.5,
              "figures": {"reorgs": {"got": 20, "asked": 20}}, "passed": True}  # fmt: skip
    fuzz = {**base, "campaign": "fuzz-token", "title": "Token machine", "command": "make fuzz",
            "figures": {"examples": {"got": 1056, "asked": 1000}}, "passed": True}  # fmt: skip
    (folder / "reorgs.json").write_text(json.dumps(passed))
    (folder / "fuzz-token.json").write_text(json.dumps(fuzz))
    out = tmp_path / "RELIABILITY.md"
    assert reliability.main(["--out", str(out), "--records", str(folder)]) == 0
    text = out.read_text()
    soak_part, fuzz_part = text.split("## Deep property runs")
    assert "| reorgs | 20 | 20 |" in soak_part and "62 s (load 3.5), passed." in soak_part
    assert "| examples | 1,000 | 1,056 |" in fuzz_part and "62 s, passed." in fuzz_part

    short = {**passed, "figures": {"reorgs": {"got": 19, "asked": 20}}, "passed": False}
    (folder / "reorgs.json").write_text(json.dumps(short))
    assert reliability.main(["--out", str(out), "--records", str(folder)]) == 1
    assert "FAILED." in out.read_text()

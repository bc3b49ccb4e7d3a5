"""The demo's report fails the run on a single wrong wei or a stopped stage, and says which."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from demo.economy import Economy, run_stages
from demo.report import DemoFailedError, DemoReport, finish
from neurotoken.chain.cli import friendly


def _economy(lines: list[str]) -> Economy:
    return Economy(None, None, None, None, DemoReport(31337), lines.append)  # type: ignore[arg-type]


def _good(e: Economy) -> None:
    r = e.report.stage("good")
    r.check("supply", 10**24, 10**24)
    r.figures["burned_ntk"] = 40 * 10**18


def _off_by_one_wei(e: Economy) -> None:
    e.report.stage("off").check("client balance", 10**18, 10**18 + 1)


def _stops(e: Economy) -> None:
    e.report.stage("stops")
    raise RuntimeError("the node went away")


def _never(e: Economy) -> None:
    raise AssertionError("a stage after a stopped one must not run")


def test_report__all_checks_hold__ok_and_written(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_stages(_economy(lines), [_good])
    path = finish(report, tmp_path / "out" / "report.json", lines.append)
    data = json.loads(path.read_text())
    assert data["ok"] is True and data["failures"] == []
    assert data["stages"][0]["figures"] == {"burned_ntk": "40000000000000000000"}
    assert data["stages"][0]["checks"][0] == {
        "name": "supply",
        "expected": str(10**24),
        "actual": str(10**24),
        "ok": True,
    }
    assert "1/1 checks exact to the wei over 1 stages" in lines[-1]


def test_report__one_wei_off_and_a_stopped_stage__fails_with_each_reason(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_stages(_economy(lines), [_good, _off_by_one_wei, _stops, _never])
    assert not report.ok
    assert [s.name for s in report.stages] == ["good", "off", "stops"]
    assert report.failures == [
        "off: client balance: expected 1000000000000000000, got 1000000000000000001",
        "stage stops stopped: RuntimeError: the node went away",
    ]
    path = tmp_path / "report.json"
    with pytest.raises(DemoFailedError, match="2 failure"):
        finish(report, path, lines.append)
    data = json.loads(path.read_text())  # written before failing
    assert data["ok"] is False
    assert [s["ok"] for s in data["stages"]] == [True, False, False]
    assert data["stages"][2]["error"] == "RuntimeError: the node went away"


def test_report__the_demo_command_exits_1_on_a_failed_report(tmp_path: Path) -> None:
    report = run_stages(_economy([]), [_off_by_one_wei])

    @click.command()
    @friendly
    def command() -> None:
        finish(report, tmp_path / "report.json", lambda _line: None)

    result = CliRunner().invoke(command, [])
    assert result.exit_code == 1
    assert "the demo did not reconcile: 1 failure(s)" in result.output


def test_report__no_stage_ran__not_ok() -> None:
    assert not DemoReport(1).ok

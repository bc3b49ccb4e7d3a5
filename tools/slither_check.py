"""Runs slither on every top-level contract through the npm-solc wrapper.

Fails (exit 1) on any high- or medium-impact finding that `tools/slither_triage.json` does not
explain. Libraries (node_modules), reference tokens and test harnesses are filtered out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "tools" / "slither_triage.json"
REMAPS = [
    "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/",
    "solady/=node_modules/solady/src/",
]
FILTER = r"node_modules|contracts/test/|contracts/reference/"
FAILING_IMPACTS = {"High", "Medium"}


def solc_binary() -> Path:
    version = json.loads((ROOT / "node_modules" / "solc" / "package.json").read_text())["version"]
    folder = Path(os.environ.get("SOLCX_BINARY_PATH", ROOT / ".solcx"))
    path = folder / f"solc-v{version}"
    if not path.exists():
        sys.exit(f"slither_check: {path} is missing; run `make setup` first.")
    return path


def load_triage() -> list[dict[str, str]]:
    entries: list[dict[str, str]] = json.loads(TRIAGE.read_text())
    for entry in entries:
        if not entry.get("why"):
            sys.exit(f"slither_check: triage entry {entry} has no 'why'.")
    return entries


def explained(finding: dict[str, object], triage: list[dict[str, str]]) -> str | None:
    description = str(finding.get("description", ""))
    for entry in triage:
        if entry["check"] == finding.get("check") and entry["match"] in description:
            return entry["why"]
    return None


def run_slither(target: Path, solc: Path) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "slither.json"
        cmd = [
            sys.executable, "-m", "slither", str(target.relative_to(ROOT)),
            "--solc", str(solc),
            "--solc-remaps", " ".join(REMAPS),
            "--solc-args", "--evm-version prague --optimize --optimize-runs 10000",
            "--filter-paths", FILTER,
            "--exclude-informational", "--exclude-optimization",
            "--json", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if not out.exists():
            sys.stderr.write(proc.stdout + proc.stderr)
            sys.exit(f"slither_check: slither failed on {target.name}")
        report = json.loads(out.read_text())
    if not report.get("success"):
        sys.exit(f"slither_check: slither failed on {target.name}: {report.get('error')}")
    detectors: list[dict[str, object]] = report.get("results", {}).get("detectors", [])
    return detectors


def main() -> int:
    solc = solc_binary()
    triage = load_triage()
    targets = sorted((ROOT / "contracts").glob("*.sol"))
    failures = 0
    for target in targets:
        findings = run_slither(target, solc)
        for finding in findings:
            impact = str(finding.get("impact"))
            first_line = str(finding.get("description", "")).strip().splitlines()[0]
            why = explained(finding, triage)
            if why:
                print(f"  explained {impact} {finding['check']}: {first_line}\n    -> {why}")
            elif impact in FAILING_IMPACTS:
                failures += 1
                print(f"  FINDING {impact} {finding['check']}: {first_line}")
            else:
                print(f"  note {impact} {finding['check']}: {first_line}")
        print(f"slither {target.name}: {len(findings)} finding(s) at low impact or above")
    if failures:
        print(f"slither_check: {failures} unexplained high/medium finding(s)")
        return 1
    print("slither_check: no unexplained high or medium finding")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

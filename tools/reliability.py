"""RELIABILITY.md from the fault campaigns' and the deep property runs' records.

`make soak` and `make fuzz` run this last: each campaign (tests marked `soak`, and the state
machines under ``NEUROTOKEN_FUZZ=1``) leaves ``.cache/soak/<campaign>.json`` (tests/soak.py)
with what it asked for, what it injected or ran, its size, its time and the command that ran
it; this writes them all, with the machine they ran on, into RELIABILITY.md.

    python tools/reliability.py [--out RELIABILITY.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / ".cache" / "soak"

HEADER = """# Reliability

What the fault campaigns (`make soak`) and the deep property runs (`make fuzz`) injected and
checked, as their assertions held: each count below is one the campaign counted as it went
(from the processes' own `crash_injected` log events, the fault proxy's counters, the reorgs
it made) and asserted to be at least what it asked for; a campaign that injected fewer fails.
After each campaign the market's invariants were checked from the chain
(`devchain/invariants.py`): every job reached exactly one final state, nobody was paid twice,
no accepted job was left unworked, the market's NTK equals its books.

Written by `python tools/reliability.py` (the last step of `make soak` and `make fuzz`) from
`.cache/soak/*.json`. `NEUROTOKEN_SOAK_SIZE` (make's `SOAK_SIZE`) scales every count.
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores{memory}; {system}; Python {platform.python_version()}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def section(record: dict[str, Any]) -> str:
    status = "passed" if record.get("passed") else "FAILED"
    # the 5-minute load average at the end, where the record has it (older ones do not)
    load = f" (load {record['load']:g})" if "load" in record else ""
    lines = [
        f"### {record['title']}",
        "",
        f"`{record['command']}` (size {record['size']:g}), finished {record['finished']}, "
        f"{record['seconds']:,.0f} s{load}, {status}.",
        "",
        "| figure | asked (at least) | counted |",
        "|---|---:|---:|",
    ]
    for name, figure in record["figures"].items():
        lines.append(f"| {name} | {_number(figure['asked'])} | {_number(figure['got'])} |")
    for note in record.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def render(records: list[dict[str, Any]]) -> str:
    campaigns = [r for r in records if not str(r["campaign"]).startswith("fuzz-")]
    fuzz = [r for r in records if str(r["campaign"]).startswith("fuzz-")]
    parts = [HEADER, f"Machine: {machine()}.\n"]
    parts.append("## Fault campaigns (`make soak`)\n")
    parts += [section(r) for r in campaigns] or ["No campaign has run yet: `make soak`.\n"]
    parts.append("## Deep property runs (`make fuzz`)\n")
    parts += [section(r) for r in fuzz] or ["No deep run has happened yet: `make fuzz`.\n"]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--records", type=Path, default=RECORDS)
    args = parser.parse_args(argv)
    records = [json.loads(p.read_text()) for p in sorted(args.records.glob("*.json"))]
    args.out.write_text(render(records))
    failed = [r["campaign"] for r in records if not r.get("passed")]
    print(f"{args.out}: {len(records)} campaigns" + (f", FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

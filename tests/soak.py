"""The fault campaigns' size knob and their figures.

`make soak` runs the tests marked `soak` with ``NEUROTOKEN_SOAK_SIZE`` (default 1: the
counts issue 13 asks for; 0.1 for a quick look, 3 for a longer night). A campaign asks for
``scaled(n)`` of each fault, injects them, counts what it injected, and ends with
`report(...)`: the figures go to ``.cache/soak/<campaign>.json`` (``tools/reliability.py``
writes them into RELIABILITY.md) and the campaign fails if any count fell short of what it
asked. A figure in the docs is what such an assertion held, never one lucky run.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping

from oracle.settings import REPO_ROOT

SOAK_DIR = REPO_ROOT / ".cache" / "soak"
"""Where each campaign leaves its figures (one JSON file per campaign)."""


def size() -> float:
    """The campaigns' size factor (``NEUROTOKEN_SOAK_SIZE``, default 1)."""
    raw = os.environ.get("NEUROTOKEN_SOAK_SIZE", "1")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"NEUROTOKEN_SOAK_SIZE must be a number, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"NEUROTOKEN_SOAK_SIZE must be above 0, got {raw!r}")
    return value


def scaled(n: int) -> int:
    """`n` (a count at size 1) at the configured size, never below 1."""
    return max(1, math.ceil(n * size()))


class Campaign:
    """A campaign's figures, timed from construction to `report`.

    ``figure(name, got, asked)`` records a count with the minimum it must reach (``asked``
    None: a measurement, not a requirement); ``note(text)`` adds a line for the summary.
    """

    def __init__(self, name: str, title: str) -> None:
        self.name = name
        self.title = title
        self.started = time.monotonic()
        self.figures: dict[str, dict[str, int | float | None]] = {}
        self.notes: list[str] = []

    def figure(self, name: str, got: int | float, asked: int | None = None) -> None:
        self.figures[name] = {"got": got, "asked": asked}

    def figures_from(self, got: Mapping[str, int], asked: Mapping[str, int]) -> None:
        for name, minimum in asked.items():
            self.figure(name, got.get(name, 0), minimum)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def report(self) -> None:
        """Writes the figures, then fails if a count is below what was asked."""
        short = {
            name: f"{f['got']} < {f['asked']}"
            for name, f in self.figures.items()
            if f["asked"] is not None and (f["got"] or 0) < f["asked"]
        }
        record = {
            "campaign": self.name,
            "title": self.title,
            "size": size(),
            "seconds": round(time.monotonic() - self.started, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            # how busy the machine was (the campaign's own processes included): times read
            # against it, as other runs may share the cores
            "load": round(os.getloadavg()[1], 1),
            "command": os.environ.get("NEUROTOKEN_SOAK_COMMAND")
            or shlex.join(["ape", *sys.argv[1:]]),
            "figures": self.figures,
            "notes": self.notes,
            "passed": not short,
        }
        SOAK_DIR.mkdir(parents=True, exist_ok=True)
        path = SOAK_DIR / f"{self.name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\n{self.title}: " + ", ".join(f"{k} {v['got']}" for k, v in self.figures.items()))
        assert not short, f"{self.title}: injected fewer than asked: {short}"

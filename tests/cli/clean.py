"""Commands as a stranger pastes them: a real process, a clean environment (only what the
caller passes: no make, nothing of the test runner's), no terminal, from the checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
"""The virtual environment's bin folder: `.venv/bin/ape`, `.venv/bin/python`."""


def run_ok(program: str, *args: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    """Runs `BIN/program args` and returns its output; fails the test on a non-zero status
    or a traceback, showing the command and what it printed."""
    result = subprocess.run(
        [str(BIN / program), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{program} {' '.join(args)}\n{output}"
    assert "Traceback" not in output
    return output

"""`make test` in two lanes at once: the test folders split in two `ape test` runs, each on
its own anvil node (ape-foundry picks a free port: `foundry: host: auto`).

Most of the process-heavy tests (oracle services, run books, the demo) spend their time
waiting on one-second blocks and confirmations, while the contract and compute tests keep a
core busy: run side by side on two cores, the suite takes about two thirds of the time it
takes in one run. Each lane's output is printed whole when it ends (the lanes do not
interleave); the exit status is the first non-zero one, so a failure in either lane fails
`make test`.

    python tools/test_lanes.py --network ethereum:local:foundry [pytest arguments...]

A lane that selects no test (pytest's status 5, e.g. `-k` matching only the other lane's
tests) counts as passed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import prune_ape_nodes  # noqa: E402

BIN = Path(sys.executable).parent

WAITING = ["tests/oracle", "tests/cli", "tests/demo", "tests/sale", "tests/web"]
"""The lane of tests that mostly wait on blocks, processes and confirmations (and the browser
tests, on pages), plus the sale's (~2 minutes) to even the lanes: measured on two cores, 9 and
12 minutes without them."""

NO_TESTS_COLLECTED = 5


def lanes() -> list[list[str]]:
    """The two lanes: WAITING, and every other test folder or module under tests/."""
    waiting = [ROOT / p for p in WAITING]
    rest = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").iterdir()
        if p not in waiting
        and not p.name.startswith(("_", "."))
        and (p.is_dir() or (p.suffix == ".py" and p.name.startswith("test_")))
    )
    return [WAITING, rest]


def main(args: list[str]) -> int:
    kept, dropped = prune_ape_nodes.prune()
    if dropped:
        print(f"ape's node registry: forgot {dropped} dead nodes, kept {kept}", flush=True)
    # Compile once, before two processes would both write the build.
    compiled = subprocess.run([str(BIN / "ape"), "compile"], cwd=ROOT, check=False)
    if compiled.returncode != 0:
        return compiled.returncode
    started = time.monotonic()
    procs = []
    for i, paths in enumerate(lanes(), start=1):
        log = open(ROOT / ".cache" / f"test-lane-{i}.log", "w+b")  # noqa: SIM115
        # the slowest tests of each lane at its end: what to move when the lanes grow
        command = [str(BIN / "ape"), "test", *paths, "--durations=25", *args]
        procs.append((i, paths, log, subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)))
    # A heartbeat a minute (or when a lane ends): each lane's last pytest percentage.
    while running := [proc for *_, proc in procs if proc.poll() is None]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            running[0].wait(timeout=60)
        elapsed = time.monotonic() - started
        print(f"[{elapsed:4.0f} s] " + "; ".join(_progress(i) for i, *_ in procs), flush=True)
    status = 0
    for i, paths, log, proc in procs:
        code = proc.wait()
        log.seek(0)
        sys.stdout.write(f"\n===== lane {i}: {' '.join(paths)} (exit {code}) =====\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(log.read())
        log.close()
        if code not in (0, NO_TESTS_COLLECTED) and status == 0:
            status = code
    print(f"\n===== both lanes done in {time.monotonic() - started:.0f} s: exit {status} =====")
    return status


def _progress(lane: int) -> str:
    """The lane's last percentage mark (pytest's `[ 42%]`), for a heartbeat line."""
    path = ROOT / ".cache" / f"test-lane-{lane}.log"
    text = path.read_bytes()[-4000:].decode(errors="replace")
    marks = [part.split("]")[0].strip() for part in text.split("[")[1:] if "%]" in part]
    return f"lane {lane} {marks[-1] if marks else 'starting'}"


if __name__ == "__main__":
    (ROOT / ".cache").mkdir(exist_ok=True)
    sys.exit(main(sys.argv[1:]))

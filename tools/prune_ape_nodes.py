"""Forgets the dead nodes in ape's registry of the nodes it started.

ape records every node it starts in ``$APE_DATA_FOLDER/processes/nodes.json`` (default
``~/.ape``) and drops the entry when it stops the node itself; a run that is killed (Ctrl-C
twice, SIGKILL, a CI timeout) leaves its entry behind for good. At exit every ape process
looks at each entry (~0.1 s each): with a few hundred stale entries that was 30-45 s added to
every `ape test` here. `make test`, `make soak` and `make fuzz` run this first; it keeps
every entry whose process is alive.

    python tools/prune_ape_nodes.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def registry() -> Path:
    folder = os.environ.get("APE_DATA_FOLDER")
    return (Path(folder) if folder else Path.home() / ".ape") / "processes" / "nodes.json"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def prune(path: Path | None = None) -> tuple[int, int]:
    """Drops the entries of dead processes; returns (kept, dropped)."""
    path = path or registry()
    try:
        data = json.loads(path.read_text())
        nodes = data["nodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0  # no registry, or not one we understand: leave it to ape
    if not isinstance(nodes, dict):
        return 0, 0
    kept = {pid: node for pid, node in nodes.items() if str(pid).isdigit() and alive(int(pid))}
    dropped = len(nodes) - len(kept)
    if dropped:
        data["nodes"] = kept
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    return len(kept), dropped


if __name__ == "__main__":
    kept, dropped = prune()
    if dropped:
        print(f"ape's node registry: forgot {dropped} dead nodes, kept {kept}")
    sys.exit(0)

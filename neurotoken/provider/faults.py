"""Fault injection for the provider agent's crash campaigns (never configured in production).

`agent run` SIGKILLs itself at a named point when ``NEUROTOKEN_AGENT_CRASH_AT`` lists it
(comma-separated), with probability ``NEUROTOKEN_AGENT_CRASH_PROBABILITY`` (default 1) each
time it gets there; nothing is injected while the variable is unset or empty (the default).
Before dying it logs one line, ``crash_injected point=<point> job=<id> pid=<pid>``, so a
campaign counts its kills from the process's own log (``tests/agent/test_soak.py``).

The points, each right after the step before it was made durable:

- ``after_accept_sent`` / ``after_submit_sent``: acceptJob / submitResult broadcast (its hash
  already in the state file), before its receipt is seen;
- ``mid_compute``: a shard's output and journal entry written while the job still has shards
  to compute;
- ``mid_serve``: the bundle server admitted a request for one of a bundle's proofs or
  objects (its reader has the manifest: a verification is under way) and is about to answer.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
from dataclasses import dataclass
from typing import Protocol

CRASH_POINTS = ("after_accept_sent", "after_submit_sent", "mid_compute", "mid_serve")
"""Where `agent run` may be told to SIGKILL itself (see the module docstring)."""


class Crash(Protocol):
    """`crash(point, job)`: dies there if configured to (a `CrashInjector`), else returns;
    `job` (a job id, or a bundle's root) only goes to the log line."""

    def __call__(self, point: str, job: int | str | None = None) -> None: ...


_log = logging.getLogger("neurotoken.provider.faults")


def parse_points(text: str) -> frozenset[str]:
    """The crash points named in `text` (comma-separated); ValueError naming an unknown one."""
    points = frozenset(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(points - set(CRASH_POINTS))
    if unknown:
        raise ValueError(f"unknown crash points {unknown}; known: {', '.join(CRASH_POINTS)}")
    return points


@dataclass(frozen=True)
class CrashInjector:
    """SIGKILLs this process at `points`, each arrival with `probability`."""

    points: frozenset[str]
    probability: float = 1.0

    def __call__(self, point: str, job: int | str | None = None) -> None:
        if point not in self.points or random.random() >= self.probability:
            return
        _log.warning("crash_injected point=%s job=%s pid=%d", point, job, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def crash_injector(points: str, probability: float) -> CrashInjector | None:
    """The injector the settings ask for, or None (nothing injected) when `points` is empty."""
    chosen = parse_points(points)
    return CrashInjector(chosen, probability) if chosen else None

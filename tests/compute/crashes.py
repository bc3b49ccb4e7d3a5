"""A provider dying between two shards, for the resumption tests of either backend."""

from __future__ import annotations

from collections.abc import Callable


class SimulatedCrashError(Exception):
    """Stands in for the provider dying between two shards."""


def crash_after(count: int) -> Callable[[int], None]:
    """An `on_shard` hook that raises SimulatedCrashError once `count` shards are recorded."""
    seen: list[int] = []

    def hook(index: int) -> None:
        seen.append(index)
        if len(seen) == count:
            raise SimulatedCrashError

    return hook

"""The Ray compute backend: each shard one Ray task on a cluster (`--backend ray`).

Each shard is a task asking for one CPU (`num_cpus=1`); its output comes back to the agent
through Ray's object store and the agent alone writes it to its bundle store and journal,
so the bundle server serves every shard whichever node computed it, and a shard already
journalled is never handed to Ray. Results are taken as they finish (`ray.wait`).

A task lost with its node (or worker) is retried by Ray (`max_retries`, system failures
only: a shard function that raises is deterministic and is not retried); if Ray gives up,
the task is resubmitted here up to `resubmits` times more.

`RayBackend(address)` connects to a running cluster (`ray start --head` on one machine,
`ray start --address HEAD:6379` on each rig); with `address=None` it starts a local Ray
(for tests, `num_cpus` CPUs). Ray is the provider's optional extra (requirements-ray.lock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from neurotoken.provider.backends import ShardFn

T = TypeVar("T")

MAX_IN_FLIGHT = 256
"""Shard tasks `run` keeps submitted at once: enough to keep a farm of a few hundred cores
busy, and each wait scans only these (not every shard of a huge job, which made collecting N
results cost O(N^2)); the rest are submitted as results come in."""


class RayBackend:
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        max_retries: int = 3,
        resubmits: int = 2,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        import ray

        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._ray: Any = ray
        self.address = address
        self.max_retries = max_retries
        self.resubmits = resubmits
        self.max_in_flight = max_in_flight
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
            )
        lost: tuple[type[BaseException], ...] = (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OwnerDiedError,
            ray.exceptions.TaskUnschedulableError,
            ray.exceptions.RaySystemError,
        )
        self._lost = lost

    @property
    def parallelism(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def _submit(self, fn: ShardFn[T], data: Any, index: int) -> Any:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._ray.remote(num_cpus=1, max_retries=self.max_retries)(fn)
            self._remotes[fn] = remote
        return remote.remote(data, index)

    def _get(self, fn: ShardFn[T], data: Any, index: int, ref: Any) -> T:
        """The task's output; a task lost with its node is resubmitted (`resubmits` times)."""
        for attempt in range(self.resubmits + 1):
            try:
                return self._ray.get(ref)  # type: ignore[no-any-return]
            except self._lost:
                if attempt == self.resubmits:
                    raise
                ref = self._submit(fn, data, index)
        raise AssertionError("unreachable")

    def _cancel(self, refs: Sequence[Any]) -> None:
        for ref in refs:
            # a task already finished, or gone with its node, cannot be cancelled
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)

    def run(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int]
    ) -> Generator[tuple[int, T], None, None]:
        if not indices:
            return
        data = self._ray.put(spec_data)
        queue = iter(indices)
        pending: dict[Any, int] = {}

        def refill() -> None:
            while len(pending) < self.max_in_flight:
                index = next(queue, None)
                if index is None:
                    return
                pending[self._submit(fn, data, index)] = index

        refill()
        try:
            while pending:
                ready, _ = self._ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                index = pending.pop(ref)
                refill()
                yield index, self._get(fn, data, index, ref)
        finally:
            self._cancel(list(pending))

    def ordered(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int], ahead: int
    ) -> Generator[tuple[int, T], None, None]:
        if not indices:
            return
        data = self._ray.put(spec_data)
        pending: dict[int, Any] = {}
        try:
            for pos, index in enumerate(indices):
                for nxt in indices[pos : pos + max(1, ahead)]:
                    if nxt not in pending:
                        pending[nxt] = self._submit(fn, data, nxt)
                yield index, self._get(fn, data, index, pending.pop(index))
        finally:
            self._cancel(list(pending.values()))

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

"""The Ray compute backend: each shard one Ray task on a cluster (`--backend ray`).

Each shard is a task asking for one CPU (`num_cpus=1`), and a step that needs a GPU (a
float32 training segment, `call(..., gpu=True)`) a task asking for one GPU too
(`num_gpus=1`: Ray runs it on a node with a free GPU and sets CUDA_VISIBLE_DEVICES to it).
Outputs come back to the agent through Ray's object store and the agent alone writes them to
its bundle store and journal, so the bundle server serves every shard whichever node
computed it, and a shard already journalled is never handed to Ray. Results are taken as
they finish (`ray.wait`).

A task lost with its node (or worker) is retried by Ray (`max_retries`, system failures
only: a shard function that raises is deterministic and is not retried); if Ray gives up,
the task is resubmitted here up to `resubmits` times more.

`RayBackend(address)` connects to a running cluster (`ray start --head` on one machine,
`ray start --address HEAD:6379` on each rig); with `address=None` it starts a local Ray
(for tests: `num_cpus` CPUs and `num_gpus` GPUs; Ray's GPU count is a declaration, so a
test can give a machine without one a GPU to schedule on). Ray is the provider's optional
extra (requirements-ray.lock).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from neurotoken.errors import ConfigError
from neurotoken.provider.backends import ShardFn

T = TypeVar("T")

MAX_IN_FLIGHT = 256
"""Shard tasks one `run` keeps submitted at most: each wait scans only these (not every
shard of a huge job, which made collecting N results cost O(N^2)); the rest are submitted as
results come in."""

IN_FLIGHT_PER_CPU = 2
"""Below MAX_IN_FLIGHT, one `run` keeps at most this many tasks per CPU of the cluster
submitted: enough to keep every core busy while results travel back, and few enough that
jobs computed at once share the cluster (Ray runs queued tasks in about the order they came:
a job that queued all its shards first would hold every core until its last one)."""


def _check_head(address: str, timeout_s: float = 5.0) -> None:
    """One clear error for a head that does not answer (Ray itself retries for a minute, then
    ends the process with its own log lines)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError):
        pass
    raise ConfigError(
        f"no Ray head answers at --ray-address {address}: start it (`ray start --head`) or "
        "fix the address (HOST:6379)"
    )


class RayBackend:
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
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
        self._remotes: dict[tuple[Callable[..., Any], bool], Any] = {}
        self._lock = threading.Lock()
        self._owns = not ray.is_initialized()
        if self._owns and address not in (None, "auto"):
            _check_head(address)
        if self._owns:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                num_gpus=num_gpus if address is None else None,
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

    concurrent_jobs = True

    @property
    def parallelism(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    @property
    def gpus(self) -> int:
        return int(self._ray.cluster_resources().get("GPU", 0))

    def _submit(self, fn: Callable[..., Any], *args: Any, gpu: bool = False) -> Any:
        # One remote function per shard function, made once, also when jobs computed at once
        # ask for it together: two would be two scheduling classes, and Ray keeps a class's
        # workers while it has tasks queued, so one job would hold every core until its end.
        with self._lock:
            remote = self._remotes.get((fn, gpu))
            if remote is None:
                resources = {"num_cpus": 1, "num_gpus": 1} if gpu else {"num_cpus": 1}
                remote = self._ray.remote(max_retries=self.max_retries, **resources)(fn)
                self._remotes[(fn, gpu)] = remote
        return remote.remote(*args)

    def _get(self, ref: Any, fn: Callable[..., T], *args: Any, gpu: bool = False) -> T:
        """The task's output; a task lost with its node is resubmitted (`resubmits` times)."""
        for attempt in range(self.resubmits + 1):
            try:
                return self._ray.get(ref)  # type: ignore[no-any-return]
            except self._lost:
                if attempt == self.resubmits:
                    raise
                ref = self._submit(fn, *args, gpu=gpu)
        raise AssertionError("unreachable")

    def call(self, fn: Callable[..., T], *args: Any, gpu: bool = False) -> T:
        if not gpu:
            return fn(*args)
        if self.gpus == 0:  # a task asking for a GPU would wait for one forever
            raise RuntimeError("the Ray cluster has no GPU: start rigs with GPUs (ray start)")
        return self._get(self._submit(fn, *args, gpu=True), fn, *args, gpu=True)

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
        # The spec goes by value, inlined in each task (a few hundred bytes), not ray.put: Ray
        # groups queued tasks by the stored objects they take, and keeps a group's workers
        # while it has tasks queued, so two jobs with an object each would take turns by job.
        data = spec_data
        queue = iter(indices)
        pending: dict[Any, int] = {}
        window = min(self.max_in_flight, IN_FLIGHT_PER_CPU * self.parallelism)

        def refill() -> None:
            while len(pending) < window:
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
                yield index, self._get(ref, fn, data, index)
        finally:
            self._cancel(list(pending))

    def ordered(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int], ahead: int
    ) -> Generator[tuple[int, T], None, None]:
        if not indices:
            return
        data = spec_data  # by value, as in `run`
        pending: dict[int, Any] = {}
        try:
            for pos, index in enumerate(indices):
                for nxt in indices[pos : pos + max(1, ahead)]:
                    if nxt not in pending:
                        pending[nxt] = self._submit(fn, data, nxt)
                yield index, self._get(pending.pop(index), fn, data, index)
        finally:
            self._cancel(list(pending.values()))

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

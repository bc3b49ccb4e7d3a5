"""Where a job's shards are computed: the compute backend interface and its local process pool.

A backend runs a module-level shard function, `fn(spec_json, index) -> output`, on many shard
indices and hands the outputs back to the agent, which alone writes them to its store and
journal (the journal stays the single source of truth; a backend never sees it). Two ways:

- `run`: outputs streamed back as they finish, in any order (independent shards);
- `ordered`: outputs in index order, at most `ahead` computed in advance (a training chain's
  segment data, prepared ahead of the segment that needs it);
- `call`: one call that cannot be split (a training chain's segment step), on one of the
  backend's GPUs when asked (`gpus` says how many it has).

`LocalBackend` (the default) is a spawned process pool on this machine; `RayBackend`
(`neurotoken.provider.ray_backend`) hands each shard to a Ray cluster as one task.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
ShardFn = Callable[[bytes, int], T]


class ComputeBackend(Protocol):
    """Computes shard functions on shard indices; see the module's docstring."""

    name: str

    def run(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int]
    ) -> Generator[tuple[int, T], None, None]:
        """`(index, fn(spec_data, index))` for every index, as each finishes."""
        ...

    def ordered(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int], ahead: int
    ) -> Generator[tuple[int, T], None, None]:
        """`(index, fn(spec_data, index))` in the order of `indices`, at most `ahead` pending."""
        ...

    def call(self, fn: Callable[..., T], *args: Any, gpu: bool = False) -> T:
        """`fn(*args)` once: with `gpu`, where one GPU is the call's alone (Ray: a task asking
        `num_gpus=1`); without, in this process."""
        ...

    @property
    def parallelism(self) -> int:
        """How many shards it computes at once (sizes read-ahead windows)."""
        ...

    @property
    def gpus(self) -> int:
        """GPUs it can give a `call` (0: none)."""
        ...

    @property
    def concurrent_jobs(self) -> bool:
        """Whether several jobs should be computed at once (each job's shards fill a local
        pool, while a cluster schedules the tasks of every job together)."""
        ...

    def close(self) -> None:
        """Releases what the backend holds (processes, a cluster connection)."""
        ...


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def package_home() -> str:
    """The folder this package is imported from (the repository root in a checkout)."""
    return str(Path(__file__).resolve().parents[2])


def _pool(workers: int) -> ProcessPoolExecutor:
    # Spawned workers start with this process's sys.path. Tools that load packages on a
    # temporary path (`ape run` does) leave it without the folder this package came from,
    # and the workers could not unpickle their task; make sure it is there.
    home = package_home()
    if home not in sys.path:
        sys.path.append(home)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


class LocalBackend:
    """A spawned process pool on this machine, one per call, `workers` processes at most;
    with 1 worker (or a single shard) everything runs in this process."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or default_workers())

    concurrent_jobs = False

    @property
    def parallelism(self) -> int:
        return self.workers

    @property
    def gpus(self) -> int:
        """1 when torch sees a CUDA device on this machine (a call runs here, on it)."""
        from neurotoken.workloads import training_torch

        return 1 if training_torch.cuda_available() else 0

    def call(self, fn: Callable[..., T], *args: Any, gpu: bool = False) -> T:
        return fn(*args)

    def run(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int]
    ) -> Generator[tuple[int, T], None, None]:
        if self.workers == 1 or len(indices) <= 1:
            for index in indices:
                yield index, fn(spec_data, index)
            return
        pool = _pool(min(self.workers, len(indices)))
        try:
            futures = {pool.submit(fn, spec_data, i): i for i in indices}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def ordered(
        self, fn: ShardFn[T], spec_data: bytes, indices: Sequence[int], ahead: int
    ) -> Generator[tuple[int, T], None, None]:
        if self.workers == 1 or len(indices) <= 1:
            for index in indices:
                yield index, fn(spec_data, index)
            return
        pool = _pool(min(self.workers, len(indices)))
        pending: dict[int, Future[T]] = {}
        try:
            for pos, index in enumerate(indices):
                for nxt in indices[pos : pos + max(1, ahead)]:
                    if nxt not in pending:
                        pending[nxt] = pool.submit(fn, spec_data, nxt)
                yield index, pending.pop(index).result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass

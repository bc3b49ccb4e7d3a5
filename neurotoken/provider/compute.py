"""The compute side of the provider agent: run a job's shards, resumably, on every core.

Finished shards are recorded in a journal, `<state_dir>/<spec hash>/done/<index>`, holding
the hash of the shard's output, which is itself stored in the content-addressed bundle
store. Both writes are atomic (temporary file, fsync, rename) and the journal entry is
written only after the object, so a provider killed at any instant restarts with every
finished shard intact and recomputes none of them (each is re-hashed on load, so a damaged
object is recomputed rather than trusted).

Shelf-images shards are independent and run in a process pool. Training segments form a
chain, so they run in order; their data (rendering and cropping, most of the work) is
prepared ahead in the pool, and float32 segments run on a CUDA GPU when torch sees one.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tqdm import tqdm

from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, parse_spec, spec_hash, spec_json
from neurotoken.proofs.store import LocalStore, atomic_write
from neurotoken.workloads import shelf_job, training, training_torch

AnySpec = ShelfImagesSpec | TrainingSpec
ShardHook = Callable[[int], None]


@dataclass
class ComputeReport:
    """What one `compute_job` call did."""

    output_hashes: list[bytes]
    computed: list[int] = field(default_factory=list)
    """Shards computed by this call."""
    reused: list[int] = field(default_factory=list)
    """Shards found finished in the journal (with their objects intact)."""
    device: str = "cpu"


class Journal:
    """Which shards of a spec are finished, and the hash of each one's output."""

    def __init__(self, state_dir: Path, spec: AnySpec) -> None:
        self.folder = Path(state_dir) / ("0x" + spec_hash(spec).hex()) / "done"

    def load(self, store: LocalStore, shard_count: int) -> dict[int, bytes]:
        """Finished shards whose objects are present and hash correctly."""
        done: dict[int, bytes] = {}
        if not self.folder.is_dir():
            return done
        for entry in self.folder.iterdir():
            if not entry.name.isdigit():
                continue  # a temporary file from an interrupted write
            index = int(entry.name)
            try:
                digest = bytes.fromhex(entry.read_text().strip().removeprefix("0x"))
            except ValueError:
                continue
            if index < shard_count and len(digest) == 32 and store.has_object(digest, verify=True):
                done[index] = digest
        return done

    def record(self, index: int, digest: bytes) -> None:
        atomic_write(self.folder / str(index), ("0x" + digest.hex()).encode())


@lru_cache(maxsize=4)
def _spec_from_json(data: bytes) -> AnySpec:
    return parse_spec(data)


def _shelf_worker(spec_data: bytes, index: int) -> bytes:
    spec = _spec_from_json(spec_data)
    assert isinstance(spec, ShelfImagesSpec)
    return shelf_job.compute_shelf_shard(spec, index)


def _segment_worker(spec_data: bytes, index: int) -> training.SegmentData:
    spec = _spec_from_json(spec_data)
    assert isinstance(spec, TrainingSpec)
    return training.segment_data(spec, index)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def compute_job(
    spec: AnySpec,
    store: LocalStore,
    state_dir: Path,
    workers: int | None = None,
    progress: bool = True,
    on_shard: ShardHook | None = None,
    device: str = "auto",
) -> ComputeReport:
    """Computes every unfinished shard of `spec` into `store`; returns all output hashes.

    `workers` processes (default: all cores; 1 runs everything in this process);
    `on_shard(index)` is called after each shard is durably recorded; `device` is 'cpu',
    'cuda' or 'auto' (cuda for float32 training when torch sees a GPU).
    """
    journal = Journal(state_dir, spec)
    done = journal.load(store, spec.shard_count)
    if isinstance(spec, TrainingSpec):
        # A chain: keep only the unbroken prefix (a gap means later checkpoints are orphans).
        prefix = 0
        while prefix in done:
            prefix += 1
        done = {i: done[i] for i in range(prefix)}
    report = ComputeReport(output_hashes=[], reused=sorted(done))
    todo = [i for i in range(spec.shard_count) if i not in done]
    workers = max(1, workers or default_workers())
    bar = tqdm(
        total=spec.shard_count,
        initial=len(done),
        disable=not progress,
        unit="shard",
        desc=spec.kind,
        dynamic_ncols=True,
    )

    def finish(index: int, data: bytes) -> None:
        digest = store.put_object(data)
        journal.record(index, digest)
        done[index] = digest
        report.computed.append(index)
        bar.update(1)
        if on_shard is not None:
            on_shard(index)

    try:
        if isinstance(spec, ShelfImagesSpec):
            _run_shelf(spec, todo, workers, finish)
        else:
            report.device = _run_training(spec, todo, workers, store, done, finish, device)
    finally:
        bar.close()
    report.output_hashes = [done[i] for i in range(spec.shard_count)]
    return report


def _pool(workers: int) -> ProcessPoolExecutor:
    # Spawned workers start with this process's sys.path. Tools that load packages on a
    # temporary path (`ape run` does) leave it without the folder this package came from,
    # and the workers could not unpickle their task; make sure it is there.
    home = str(Path(__file__).resolve().parents[2])
    if home not in sys.path:
        sys.path.append(home)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _run_shelf(
    spec: ShelfImagesSpec, todo: list[int], workers: int, finish: Callable[[int, bytes], None]
) -> None:
    if workers == 1 or len(todo) <= 1:
        for index in todo:
            finish(index, shelf_job.compute_shelf_shard(spec, index))
        return
    data = spec_json(spec)
    pool = _pool(min(workers, len(todo)))
    try:
        futures = {pool.submit(_shelf_worker, data, i): i for i in todo}
        for future in as_completed(futures):
            finish(futures[future], future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_training(
    spec: TrainingSpec,
    todo: list[int],
    workers: int,
    store: LocalStore,
    done: dict[int, bytes],
    finish: Callable[[int, bytes], None],
    device: str,
) -> str:
    use_cuda = spec.arithmetic == "float32" and (
        device == "cuda" or (device == "auto" and training_torch.cuda_available())
    )
    if not todo:
        return "cuda" if use_cuda else "cpu"
    first = todo[0]
    previous = store.object(done[first - 1], 1 << 30) if first > 0 else None
    pool = _pool(min(workers, len(todo))) if workers > 1 and len(todo) > 1 else None
    ahead: dict[int, Future[training.SegmentData]] = {}
    data_json = spec_json(spec)
    try:
        for pos, index in enumerate(todo):
            if pool is not None:
                for nxt in todo[pos : pos + 2 * workers]:
                    if nxt not in ahead:
                        ahead[nxt] = pool.submit(_segment_worker, data_json, nxt)
                data = ahead.pop(index).result()
            else:
                data = training.segment_data(spec, index)
            if use_cuda:
                params = (
                    training.decode_training_shard(spec, previous).params
                    if previous is not None
                    else training.initial_params(spec)
                )
                new, metrics = training_torch.run_segment_torch(spec, params, data)
                output = training.encode_training_shard(spec, index, new, metrics)
            else:
                output = training.compute_training_shard(spec, index, previous, data)
            finish(index, output)
            previous = output
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return "cuda" if use_cuda else "cpu"

"""The compute side of the provider agent: run a job's shards, resumably, on every core.

Finished shards are recorded in a journal, `<state_dir>/<spec hash>/done/<index>`, holding
the hash of the shard's output, which is itself stored in the content-addressed bundle
store. Both writes are atomic (temporary file, fsync, rename) and the journal entry is
written only after the object, so a provider killed at any instant restarts with every
finished shard intact and recomputes none of them (each is re-hashed on load, so a damaged
object is recomputed rather than trusted).

Shards are computed by a compute backend (`neurotoken.provider.backends`: a local process
pool by default, or a Ray cluster); their outputs come back here, and only this module
writes the store and the journal. Shelf-images shards are independent and run at once.
Training segments form a chain, so they run in order; their data (rendering and cropping,
most of the work) is prepared ahead on the backend, and each float32 segment step runs where
the backend has a GPU (`backend.call(..., gpu=True)`: this machine's, or a Ray task asking
for one), on CUDA when torch sees it there.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tqdm import tqdm

from neurotoken.jobs.spec import ShelfImagesSpec, TrainingSpec, parse_spec, spec_hash, spec_json
from neurotoken.proofs.store import LocalStore, atomic_write
from neurotoken.provider.backends import ComputeBackend, LocalBackend
from neurotoken.provider.backends import default_workers as default_workers
from neurotoken.provider.faults import Crash
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


def _gpu_segment_worker(
    spec_data: bytes, index: int, previous: bytes | None, data: training.SegmentData, strict: bool
) -> tuple[bytes, str]:
    """One float32 segment step where a GPU was given: on CUDA when torch sees it here,
    else (not `strict`) on this CPU, the numpy path (a rig whose torch lacks CUDA); returns
    the shard and the device it ran on."""
    spec = _spec_from_json(spec_data)
    assert isinstance(spec, TrainingSpec)
    if training_torch.cuda_available():
        params = (
            training.decode_training_shard(spec, previous).params
            if previous is not None
            else training.initial_params(spec)
        )
        new, metrics = training_torch.run_segment_torch(spec, params, data)
        return training.encode_training_shard(spec, index, new, metrics), "cuda"
    if strict:
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device where it ran")
    return training.compute_training_shard(spec, index, previous, data), "cpu"


def compute_job(
    spec: AnySpec,
    store: LocalStore,
    state_dir: Path,
    workers: int | None = None,
    progress: bool = True,
    on_shard: ShardHook | None = None,
    device: str = "auto",
    backend: ComputeBackend | None = None,
    crash: Crash | None = None,
    job: int | None = None,
) -> ComputeReport:
    """Computes every unfinished shard of `spec` into `store`; returns all output hashes.

    `backend` computes the shards (default: a `LocalBackend` of `workers` processes, all
    cores by default, 1 running everything in this process); only this function writes
    their outputs to the store and the journal, and only shards missing from the journal
    are handed to the backend;
    `on_shard(index)` is called after each shard is durably recorded; `device` is 'cpu',
    'cuda' or 'auto' (float32 training segments on a GPU when the backend has one, see
    `_run_training`); `crash` is fault injection for the crash campaigns (point
    ``mid_compute``, after a shard is recorded while others remain; `job` names the job in
    its log line), None in production.
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
    if backend is None:
        backend = LocalBackend(workers)
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
        if crash is not None and len(done) < spec.shard_count:
            crash("mid_compute", job)

    try:
        if isinstance(spec, ShelfImagesSpec):
            with closing(backend.run(_shelf_worker, spec_json(spec), todo)) as outputs:
                for index, output in outputs:
                    finish(index, output)
        else:
            report.device = _run_training(spec, todo, backend, store, done, finish, device)
    finally:
        bar.close()
    report.output_hashes = [done[i] for i in range(spec.shard_count)]
    return report


def _run_training(
    spec: TrainingSpec,
    todo: list[int],
    backend: ComputeBackend,
    store: LocalStore,
    done: dict[int, bytes],
    finish: Callable[[int, bytes], None],
    device: str,
) -> str:
    """Runs the chain's missing segments in order; returns where their steps ran: 'cpu',
    'cuda', or 'cuda+cpu' when some GPU rigs had no CUDA. Float32 steps go to a GPU when
    `device` is 'cuda', or 'auto' and the backend has one; fixed-point steps (exact) always
    run on this CPU."""
    use_gpu = spec.arithmetic == "float32" and (
        device == "cuda" or (device == "auto" and backend.gpus > 0)
    )
    if not todo:
        return "cuda" if use_gpu else "cpu"
    first = todo[0]
    previous = store.object(done[first - 1], 1 << 30) if first > 0 else None
    data_json = spec_json(spec)
    ran_on: set[str] = set()
    segments = backend.ordered(_segment_worker, data_json, todo, 2 * backend.parallelism)
    with closing(segments):
        for index, data in segments:
            if use_gpu:
                output, where = backend.call(
                    _gpu_segment_worker, data_json, index, previous, data, device == "cuda",
                    gpu=True,
                )  # fmt: skip
            else:
                output, where = training.compute_training_shard(spec, index, previous, data), "cpu"
            ran_on.add(where)
            finish(index, output)
            previous = output
    return "+".join(sorted(ran_on, reverse=True))

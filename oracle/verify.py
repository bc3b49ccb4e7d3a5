"""Verification in worker processes, each bounded in time and memory.

Every verification runs in its own child process, forked from a forkserver that has the
workloads preloaded (cheap to start, no threads inherited). The child sets RLIMIT_AS (its
address space) and RLIMIT_CPU before touching any input, fetches the spec and the
challenged parts of the bundle (bounded in size, time and retries, through
`neurotoken.proofs`), re-executes and sends back a `VerifyOutcome`. The parent kills a
child that outlives its wall-clock bound; a child that dies (out of memory, CPU limit, a
crash) yields a `RETRY` outcome, never a verdict.

Outcomes:

* ``VERDICT``: a final accept or reject (the provider's bundle was judged);
* ``RETRY``: only transient trouble (an unreachable or slow bundle server, a dead worker):
  try again later, and reject once the verdict deadline is too close to wait longer;
* ``NO_VERDICT``: the job cannot be judged through no fault of the provider (the client's
  spec is unreachable or does not match its hash): sign nothing, let the job lapse.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import resource
import time
import urllib.parse
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from neurotoken.jobs.canonical import MAX_JSON_BYTES, keccak256
from neurotoken.jobs.spec import SpecError, parse_spec
from neurotoken.proofs.store import (
    BundleSource,
    FetchError,
    FetchFailure,
    HttpLimits,
    HttpSource,
    LocalStore,
)
from neurotoken.proofs.verifier import Commitment, VerifierLimits, verify_job


class Kind(StrEnum):
    VERDICT = "verdict"
    RETRY = "retry"
    NO_VERDICT = "no_verdict"


@dataclass(frozen=True)
class VerifyTask:
    job_id: int
    result_root: bytes
    spec_hash: bytes
    spec_uri: str
    shard_count: int
    challenge_count: int
    seed: bytes
    bundle_uri: str
    fetch_timeout_s: float = 10.0
    fetch_retries: int = 2
    fetch_budget_s: float = 120.0
    memory_mb: int = 4096
    cpu_s: int = 300


@dataclass(frozen=True)
class VerifyOutcome:
    job_id: int
    result_root: bytes
    kind: Kind
    accepted: bool = False
    reasons: tuple[str, ...] = ()
    challenged: tuple[int, ...] = ()
    elapsed_s: float = 0.0


class UnusableUriError(Exception):
    """A URI scheme the oracle cannot read."""


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def fetch_spec_bytes(uri: str, limits: HttpLimits) -> bytes:
    """The spec document behind `uri` (http(s), file or data URI), at most MAX_JSON_BYTES."""
    if uri.startswith("data:"):
        header, _, payload = uri[5:].partition(",")
        raw = (
            base64.b64decode(payload)
            if header.endswith(";base64")
            else urllib.parse.unquote(payload).encode()
        )
        if len(raw) > MAX_JSON_BYTES:
            raise FetchError(FetchFailure.TOO_LARGE, "spec", f"over {MAX_JSON_BYTES} bytes")
        return raw
    local = _local_path(uri)
    if local is not None:
        try:
            with local.open("rb") as fh:
                raw = fh.read(MAX_JSON_BYTES + 1)
        except FileNotFoundError:
            raise FetchError(FetchFailure.MISSING, "spec", str(local)) from None
        except OSError as exc:
            raise FetchError(FetchFailure.UNAVAILABLE, "spec", str(exc)) from None
        if len(raw) > MAX_JSON_BYTES:
            raise FetchError(FetchFailure.TOO_LARGE, "spec", f"over {MAX_JSON_BYTES} bytes")
        return raw
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _http_get(uri, limits)
    raise UnusableUriError(f"unsupported spec URI scheme in {uri[:80]!r}")


def _http_get(url: str, limits: HttpLimits) -> bytes:
    base, _, last = url.rpartition("/")
    return asyncio.run(HttpSource(base, limits).aget(last, MAX_JSON_BYTES))


def bundle_source(uri: str, limits: HttpLimits) -> BundleSource:
    """The bundle server behind `uri`: an HTTP(S) base URL, or a local folder."""
    local = _local_path(uri)
    if local is not None:
        return LocalStore(local)
    if urllib.parse.urlparse(uri).scheme in ("http", "https"):
        return HttpSource(uri, limits)
    raise UnusableUriError(f"unsupported bundle URI scheme in {uri[:80]!r}")


def run_task(task: VerifyTask) -> VerifyOutcome:
    """The whole verification of one job (in the current process, no limits applied)."""
    started = time.monotonic()

    def done(
        kind: Kind,
        accepted: bool = False,
        reasons: tuple[str, ...] = (),
        challenged: tuple[int, ...] = (),
    ) -> VerifyOutcome:
        return VerifyOutcome(
            task.job_id,
            task.result_root,
            kind,
            accepted,
            reasons,
            challenged,
            time.monotonic() - started,
        )

    limits = HttpLimits(timeout_s=task.fetch_timeout_s, retries=task.fetch_retries, backoff_s=0.25)
    try:
        raw_spec = fetch_spec_bytes(task.spec_uri, limits)
    except UnusableUriError as exc:
        return done(Kind.NO_VERDICT, reasons=(f"SPEC_UNREADABLE: {exc}",))
    except FetchError as exc:
        kind = Kind.RETRY if exc.transient else Kind.NO_VERDICT
        return done(kind, reasons=(f"SPEC_UNAVAILABLE: {exc}",))
    if keccak256(raw_spec) != task.spec_hash:
        return done(
            Kind.NO_VERDICT,
            reasons=("SPEC_HASH_MISMATCH: the spec served does not hash to the posted spec hash",),
        )
    try:
        spec = parse_spec(raw_spec)
    except SpecError as exc:
        return done(Kind.NO_VERDICT, reasons=(f"SPEC_INVALID: {exc}",))
    try:
        source = bundle_source(task.bundle_uri, limits)
    except UnusableUriError as exc:
        return done(Kind.VERDICT, reasons=(f"BUNDLE_URI_UNUSABLE: {exc}",))
    commitment = Commitment(task.job_id, task.spec_hash, task.shard_count, task.result_root)
    verdict = verify_job(
        spec,
        commitment,
        task.seed,
        task.challenge_count,
        source,
        VerifierLimits(deadline_s=task.fetch_budget_s),
    )
    reasons = tuple(str(f) for f in verdict.findings)
    if verdict.accepted:
        return done(Kind.VERDICT, True, (), verdict.challenged)
    kind = Kind.RETRY if verdict.retryable else Kind.VERDICT
    return done(kind, False, reasons, verdict.challenged)


def _child(task: VerifyTask, conn: Connection) -> None:
    """Worker entry point: limits first, then the work; the outcome goes down the pipe."""
    limit = task.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = max(1, int(task.cpu_s))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        outcome = run_task(task)
    except MemoryError:
        outcome = VerifyOutcome(
            task.job_id,
            task.result_root,
            Kind.RETRY,
            reasons=(f"WORKER_MEMORY: over {task.memory_mb} MiB",),
        )
    except Exception as exc:  # a bug, not a verdict: retry, never sign on it
        outcome = VerifyOutcome(
            task.job_id,
            task.result_root,
            Kind.RETRY,
            reasons=(f"WORKER_ERROR: {type(exc).__name__}: {str(exc)[:200]}",),
        )
    conn.send(outcome)
    conn.close()


def _noop() -> None:
    """A worker that does nothing (starting it starts the forkserver)."""


@dataclass
class _Running:
    task: VerifyTask
    process: BaseProcess
    conn: Connection
    started: float
    deadline: float


@dataclass
class VerifierPool:
    """At most `workers` verifications at a time, each in a bounded child process."""

    workers: int = 1
    timeout_s: float = 300.0
    preload: tuple[str, ...] = (
        "oracle.verify",
        "neurotoken.proofs.verifier",
        "neurotoken.workloads",
    )
    _ctx: BaseContext | None = None
    _running: dict[int, _Running] = field(default_factory=dict)

    def _context(self) -> BaseContext:
        if self._ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(list(self.preload))
            self._ctx = ctx
        return self._ctx

    def warm(self) -> None:
        """Starts the forkserver (and its preloading) now rather than at the first job."""
        process = self._context().Process(target=_noop, daemon=True)  # type: ignore[attr-defined]
        process.start()
        process.join(timeout=60)

    @property
    def busy(self) -> int:
        return len(self._running)

    def has_room(self) -> bool:
        return len(self._running) < self.workers

    def running(self, job_id: int) -> bool:
        return job_id in self._running

    def submit(self, task: VerifyTask) -> None:
        if task.job_id in self._running:
            return
        ctx = self._context()
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(  # type: ignore[attr-defined]
            target=_child, args=(task, child), name=f"verify-{task.job_id}", daemon=True
        )
        process.start()
        child.close()
        now = time.monotonic()
        self._running[task.job_id] = _Running(task, process, parent, now, now + self.timeout_s)

    def poll(self) -> list[VerifyOutcome]:
        """Outcomes of the verifications that finished, died or ran out of time."""
        out: list[VerifyOutcome] = []
        now = time.monotonic()
        for job_id, run in list(self._running.items()):
            outcome: VerifyOutcome | None = None
            if run.conn.poll():
                try:
                    outcome = run.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is None:
                    outcome = self._failed(run, "WORKER_DIED: no result")
            elif not run.process.is_alive():
                run.process.join(timeout=0)
                code = run.process.exitcode
                outcome = self._failed(run, f"WORKER_DIED: exit code {code}")
            elif now > run.deadline:
                run.process.kill()
                outcome = self._failed(run, f"WORKER_TIMEOUT: over {self.timeout_s:.0f}s")
            if outcome is not None:
                run.process.join(timeout=5)
                run.conn.close()
                del self._running[job_id]
                out.append(outcome)
        return out

    def _failed(self, run: _Running, reason: str) -> VerifyOutcome:
        return VerifyOutcome(
            run.task.job_id,
            run.task.result_root,
            Kind.RETRY,
            reasons=(reason,),
            elapsed_s=time.monotonic() - run.started,
        )

    def shutdown(self) -> None:
        for run in self._running.values():
            if run.process.is_alive():
                run.process.kill()
            run.process.join(timeout=5)
            run.conn.close()
        self._running.clear()


def task_limits(settings: Any) -> dict[str, Any]:
    """The bounds of a task from the oracle's settings."""
    return {
        "fetch_timeout_s": settings.fetch_timeout_s,
        "fetch_retries": settings.fetch_retries,
        "fetch_budget_s": max(1.0, settings.verify_timeout_s * 0.8),
        "memory_mb": settings.verify_memory_mb,
        "cpu_s": int(settings.verify_timeout_s) + 1,
    }


__all__ = [
    "Kind",
    "VerifierPool",
    "VerifyOutcome",
    "VerifyTask",
    "bundle_source",
    "fetch_spec_bytes",
    "run_task",
    "task_limits",
]

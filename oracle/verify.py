"""Verification in worker processes, each bounded in time and memory.

Every verification runs in its own child process, forked from a forkserver that has the
workloads preloaded (cheap to start, no threads inherited). The child sets RLIMIT_AS (its
address space) and RLIMIT_CPU before touching any input, obtains the spec, fetches the
bundle (bounded in size, time, rate and retries, through `neurotoken.proofs`), checks the
whole result is served, re-executes the challenged shards and sends back a
`VerifyOutcome`. The parent kills a child that outlives its wall-clock bound; a child that
dies (out of memory, CPU limit, a crash) yields a `RETRY` outcome, never a verdict.

A provider serves a bundle only to the job's client and oracles: the oracle's main process,
which holds the key, signs a bundle access token (`neurotoken.proofs.access`) for the root
and puts the header in the task (`VerifyTask.bundle_auth`); the worker only sends it, and
never sees the key. A token lives for the whole verification (`access_lifetime_s`). A
provider that refuses the token (HTTP 401/403) is `UNAVAILABLE`: retried, and a reject once
the verdict deadline nears.

The spec is content-addressed: its bytes are accepted from whichever source serves bytes
hashing to the on-chain spec hash. A local client URI (`data:`, `file:`) is read first (it
costs nothing), then the provider's bundle (`bundles/0x<root>/spec`, which a provider must
publish: it accepted the job, so it had the spec), then the client's remote URI. The spec
fetches and the bundle fetches share one budget (`fetch_budget_s`).

Outcomes, by cause:

* ``VERDICT``, accepted: every challenged shard re-executed and matched, every other shard
  output is served and hashes to its leaf.
* ``VERDICT``, rejected: anything the provider controls went wrong: the bundle (manifest,
  proofs, shard bytes, a server that drips or serves too much: see
  `neurotoken.proofs.verifier.Reason`); an unusable bundle URI (``BUNDLE_URI_UNUSABLE``);
  no source serving the spec's bytes while the bundle server answered
  (``SPEC_NOT_SERVED``); a spec that hashes right but is invalid (``SPEC_INVALID``: the
  provider accepted an invalid job); a valid spec the market cannot pay for
  (``SPEC_UNPAYABLE``: `neurotoken.jobs.market_problems`, e.g. over an oracle's
  verification budget); and anything unexpected while judging the provider's data
  (``MALFORMED``).
* ``RETRY``: only transient trouble: an unreachable, failing or timed-out bundle server
  (reasons start with ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED``, which the service turns
  into a reject once the verdict deadline is near), or the oracle's own failure (reasons
  start with ``WORKER_``: a crash, its memory or CPU limit, its machine).
* ``NO_VERDICT``: no longer produced: every cause above is either the provider's (a
  reject) or transient/the oracle's own (a retry). Kept so stored outcomes still load.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import stat
import time
import urllib.parse
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurotoken.errors import NeurotokenError
from neurotoken.jobs.canonical import MAX_JSON_BYTES, keccak256
from neurotoken.jobs.data_uri import DataUriError, data_uri_bytes
from neurotoken.jobs.spec import (
    ShelfImagesSpec,
    SpecError,
    TrainingSpec,
    market_problems,
    parse_spec,
)
from neurotoken.proofs.access import MAX_TOKEN_AHEAD_S, TOKEN_LIFETIME_S, BundleAccess
from neurotoken.proofs.store import (
    BundleSource,
    FetchError,
    FetchFailure,
    HttpLimits,
    HttpSource,
    LocalStore,
)
from neurotoken.proofs.verifier import (
    ORACLE_SIDE,
    Commitment,
    Finding,
    Reason,
    VerifierLimits,
    safe_text,
    verify_job,
)

if TYPE_CHECKING:
    from neurotoken.market.verdicts import MarketDomain
    from oracle.keys import OracleKey


class Kind(StrEnum):
    VERDICT = "verdict"
    RETRY = "retry"
    NO_VERDICT = "no_verdict"
    """Not produced any more (see the module docstring)."""


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
    bundle_auth: str = field(default="", repr=False)
    """The Authorization header for reading `result_root` from the provider (`bundle_access`;
    a short-lived credential, kept out of reprs); empty: none sent (a local folder, or a
    dry-run oracle, which has no key)."""


@dataclass(frozen=True)
class VerifyOutcome:
    job_id: int
    result_root: bytes
    kind: Kind
    accepted: bool = False
    reasons: tuple[str, ...] = ()
    challenged: tuple[int, ...] = ()
    elapsed_s: float = 0.0


class UnusableUriError(NeurotokenError):
    """A URI scheme the oracle cannot read."""


def _local_path(uri: str) -> Path | None:
    try:
        parsed = urllib.parse.urlparse(uri)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise UnusableUriError(f"unparsable URI {uri[:80]!r}: {exc}") from None
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _scheme(uri: str) -> str:
    try:
        return urllib.parse.urlparse(uri).scheme
    except ValueError as exc:
        raise UnusableUriError(f"unparsable URI {uri[:80]!r}: {exc}") from None


def _read_local(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, at most `max_bytes` (a FIFO or device must not hang us)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FetchError(FetchFailure.MISSING, "spec", f"{path} is not a regular file")
            raw = fh.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise FetchError(FetchFailure.MISSING, "spec", str(path)) from None
    except OSError as exc:
        raise FetchError(FetchFailure.UNAVAILABLE, "spec", str(exc)) from None
    if len(raw) > max_bytes:
        raise FetchError(FetchFailure.TOO_LARGE, "spec", f"over {max_bytes} bytes")
    return raw


def fetch_spec_bytes(uri: str, limits: HttpLimits, deadline: float | None = None) -> bytes:
    """The spec document behind `uri` (http(s), file or data URI), at most MAX_JSON_BYTES;
    FetchError, or UnusableUriError for a URI nobody can read."""
    if uri.startswith("data:"):
        try:
            raw = data_uri_bytes(uri)
        except DataUriError as exc:
            raise UnusableUriError(str(exc)) from None
        if len(raw) > MAX_JSON_BYTES:
            raise FetchError(FetchFailure.TOO_LARGE, "spec", f"over {MAX_JSON_BYTES} bytes")
        return raw
    local = _local_path(uri)
    if local is not None:
        return _read_local(local, MAX_JSON_BYTES)
    if _scheme(uri) in ("http", "https"):
        base, _, last = uri.rpartition("/")
        return asyncio.run(HttpSource(base, limits, deadline).aget(last, MAX_JSON_BYTES))
    raise UnusableUriError(f"unsupported spec URI scheme in {uri[:80]!r}")


def bundle_source(uri: str, limits: HttpLimits, access: BundleAccess | None = None) -> BundleSource:
    """The bundle server behind `uri`: an HTTP(S) base URL (sent `access`, the reader's
    token, with every request), or a local folder."""
    local = _local_path(uri)
    if local is not None:
        return LocalStore(local)
    if _scheme(uri) in ("http", "https"):
        return HttpSource(uri, limits, access=access)
    raise UnusableUriError(f"unsupported bundle URI scheme in {uri[:80]!r}")


def access_lifetime_s(settings: Any) -> float:
    """How long an oracle's bundle token lives: the whole verification and a minute, within
    what a provider accepts (`MAX_TOKEN_AHEAD_S`, less a minute of clock skew)."""
    wanted = max(float(TOKEN_LIFETIME_S), float(settings.verify_timeout_s) + 60.0)
    return min(wanted, MAX_TOKEN_AHEAD_S - 60.0)


def bundle_access(
    key: OracleKey | None, domain: MarketDomain | None, root: bytes, settings: Any
) -> str:
    """The Authorization header a verification of `root` sends to the provider, signed in
    the oracle's main process (the worker never holds the key); "" without a key."""
    if key is None or domain is None:
        return ""
    return key.bundle_access(domain, root, access_lifetime_s(settings)).authorization


@dataclass(frozen=True)
class SpecSearch:
    """Where the spec's bytes came from, or why no source served them."""

    raw: bytes | None
    tried: tuple[str, ...]
    """What each source that failed said, in the order tried."""
    provider_transient: bool
    """The provider's bundle failed only transiently (a retry may find the spec there)."""


def _is_local(uri: str) -> bool:
    try:
        return uri.startswith("data:") or _local_path(uri) is not None
    except UnusableUriError:
        return False


def find_spec(
    task: VerifyTask, source: BundleSource, limits: HttpLimits, deadline: float
) -> SpecSearch:
    """The spec's bytes from the client's URI or the provider's bundle, whichever serves
    bytes hashing to the on-chain spec hash (a local client URI first, then the bundle, then
    a remote client URI: a remote client cannot make an honest provider wait)."""
    bounded = source.until(deadline) if isinstance(source, HttpSource) else source
    tried: list[str] = []
    provider_transient = False

    def from_client() -> bytes:
        return fetch_spec_bytes(task.spec_uri, limits, deadline)

    def from_bundle() -> bytes:
        return bounded.spec(task.result_root, MAX_JSON_BYTES)

    client = ("client URI", from_client)
    bundle = ("provider bundle", from_bundle)
    for name, fetch in (client, bundle) if _is_local(task.spec_uri) else (bundle, client):
        try:
            raw = fetch()
        except FetchError as exc:
            tried.append(f"{name}: {exc}")
            provider_transient |= fetch is from_bundle and exc.transient
            continue
        except ORACLE_SIDE:
            raise
        except Exception as exc:  # UnusableUriError, or anything a URI provokes
            tried.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if keccak256(raw) == task.spec_hash:
            return SpecSearch(raw, tuple(tried), False)
        # (no digest quoted: a file: URI names a file on this machine, not the client's)
        tried.append(f"{name}: {len(raw)} bytes that do not hash to the spec hash")
    return SpecSearch(None, tuple(tried), provider_transient)


def _parse_spec(raw: bytes) -> ShelfImagesSpec | TrainingSpec | Finding:
    try:
        return parse_spec(raw)
    except SpecError as exc:
        return Finding(Reason.SPEC_INVALID, None, str(exc))
    except ORACLE_SIDE:
        raise
    except Exception as exc:  # a spec shape the validators did not foresee
        return Finding(Reason.SPEC_INVALID, None, f"{type(exc).__name__}: {exc}")


def _printable(text: str) -> bool:
    return len(text) <= 1000 and text.isascii() and text.isprintable()


def run_task(task: VerifyTask) -> VerifyOutcome:
    """The whole verification of one job (in the current process, no limits applied).

    Returns an outcome for anything the client or the provider serves; only the oracle's
    own trouble (`neurotoken.proofs.verifier.ORACLE_SIDE`) raises."""
    started = time.monotonic()
    deadline = started + task.fetch_budget_s

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
            tuple(r if _printable(r) else safe_text(r, 1000) for r in reasons),
            challenged,
            time.monotonic() - started,
        )

    limits = HttpLimits(timeout_s=task.fetch_timeout_s, retries=task.fetch_retries, backoff_s=0.25)
    access = BundleAccess(task.result_root, task.bundle_auth) if task.bundle_auth else None
    try:
        source = bundle_source(task.bundle_uri, limits, access)
    except UnusableUriError as exc:
        return done(Kind.VERDICT, reasons=(f"BUNDLE_URI_UNUSABLE: {exc}",))
    search = find_spec(task, source, limits, deadline)
    if search.raw is None:
        tried = "; ".join(search.tried)
        if search.provider_transient:  # the bundle server may yet serve it: retry
            return done(Kind.RETRY, reasons=(str(Finding(Reason.UNAVAILABLE, None, tried)),))
        return done(Kind.VERDICT, reasons=(str(Finding(Reason.SPEC_NOT_SERVED, None, tried)),))
    spec = _parse_spec(search.raw)
    if isinstance(spec, Finding):
        return done(Kind.VERDICT, reasons=(str(spec),))
    problems = market_problems(spec, task.challenge_count)
    if problems:  # the provider took a job no oracle can verify in budget, or not payable
        detail = "; ".join(problems)
        return done(Kind.VERDICT, reasons=(str(Finding(Reason.SPEC_UNPAYABLE, None, detail)),))
    commitment = Commitment(task.job_id, task.spec_hash, task.shard_count, task.result_root)
    verdict = verify_job(
        spec,
        commitment,
        task.seed,
        task.challenge_count,
        source,
        VerifierLimits(deadline_s=deadline - time.monotonic()),
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
    "access_lifetime_s",
    "bundle_access",
    "bundle_source",
    "fetch_spec_bytes",
    "find_spec",
    "run_task",
    "task_limits",
]

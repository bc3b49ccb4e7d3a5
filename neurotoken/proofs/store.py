"""Where bundles live: a content-addressed folder, readable locally or over HTTP.

Layout (the same paths are served by `neurotoken.provider.server`):

    objects/<keccak256 hex>                   shard outputs, named by the hash of their bytes
    bundles/<root hex>/manifest               the manifest of the bundle committed as <root>
    bundles/<root hex>/proofs/<index>         the inclusion proof of shard <index>
    bundles/<root hex>/spec                   the job spec's exact bytes (keccak256 = spec hash)

A `BundleSource` only moves bytes, within a size bound and a time bound; it raises
`FetchError` (and nothing else, bar the reader's own MemoryError) when it cannot. Checking
what comes back is the reader's job: `fetch_object` hashes every object it returns.

Over HTTP every attempt is bounded by a whole-request deadline, by an optional overall
deadline (`HttpSource.until`), and, once the headers are in, by a minimum average rate
(`HttpLimits.min_rate_bps` after `rate_grace_s`): a server that drips its body fails with
`TOO_SLOW`, which is retried like a transient failure but, if every attempt drips, is final
(the provider's fault), not transient.

A provider serves a bundle only to its readers (the job's client and oracles: see
`neurotoken.proofs.access`). An `HttpSource` given a `BundleAccess` sends its token with
every request and asks for objects under the bundle they belong to
(`bundles/<root hex>/objects/<hash hex>`); a refusal (HTTP 401/403) is `UNAVAILABLE`, like
any other error answer: a retry may meet a server whose view of the chain has caught up,
and the oracle turns a provider that keeps refusing into a reject.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiohttp

from neurotoken.errors import NeurotokenError
from neurotoken.jobs.canonical import keccak256
from neurotoken.proofs.access import BundleAccess


class FetchFailure(StrEnum):
    MISSING = "not found"
    TOO_LARGE = "larger than allowed"
    TIMEOUT = "timed out"
    UNAVAILABLE = "unavailable"
    HASH_MISMATCH = "bytes do not match their hash"
    TOO_SLOW = "sent slower than the minimum rate"


class FetchError(NeurotokenError):
    """Bytes could not be fetched; `failure` says why, `transient` whether a retry may help."""

    def __init__(self, failure: FetchFailure, what: str, detail: str = "") -> None:
        self.failure = failure
        self.what = what
        self.detail = detail
        super().__init__(f"{what}: {failure.value}" + (f" ({detail})" if detail else ""))

    @property
    def transient(self) -> bool:
        return self.failure in (FetchFailure.TIMEOUT, FetchFailure.UNAVAILABLE)


class BundleSource(Protocol):
    """Read access to bundles, bounded in size (and, remotely, in time)."""

    def manifest(self, root: bytes, max_bytes: int) -> bytes: ...

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes: ...

    def object(self, digest: bytes, max_bytes: int) -> bytes: ...

    def spec(self, root: bytes, max_bytes: int) -> bytes: ...


def object_path(digest: bytes) -> str:
    return f"objects/0x{digest.hex()}"


def manifest_path(root: bytes) -> str:
    return f"bundles/0x{root.hex()}/manifest"


def proof_path(root: bytes, index: int) -> str:
    return f"bundles/0x{root.hex()}/proofs/{index}"


def spec_path(root: bytes) -> str:
    return f"bundles/0x{root.hex()}/spec"


def bundle_object_path(root: bytes, digest: bytes) -> str:
    """Where a bundle server serves the object `digest` to readers of bundle `root`."""
    return f"bundles/0x{root.hex()}/objects/0x{digest.hex()}"


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(auto_decompress=False)


def check_objects(
    source: BundleSource, digests: Sequence[bytes], max_bytes: int
) -> list[FetchError | None]:
    """For each digest, None if `source` serves an object hashing to it (at most
    `max_bytes`), else the FetchError. Bytes are hashed and dropped, not kept."""
    if isinstance(source, HttpSource):
        return source.check_objects(digests, max_bytes)
    out: list[FetchError | None] = []
    for digest in digests:
        try:
            fetch_object(source, digest, max_bytes)
            out.append(None)
        except FetchError as exc:
            out.append(exc)
    return out


def fetch_object(source: BundleSource, digest: bytes, max_bytes: int) -> bytes:
    """The object named `digest`, its bytes checked against it."""
    data = source.object(digest, max_bytes)
    if keccak256(data) != digest:
        raise FetchError(FetchFailure.HASH_MISMATCH, object_path(digest), f"{len(data)} bytes")
    return data


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore:
    """A bundle folder: the provider writes it, and it is itself a `BundleSource`."""

    def __init__(self, root_dir: Path) -> None:
        self.root_dir = Path(root_dir)

    # writing

    def put_object(self, data: bytes) -> bytes:
        """Stores `data` under its keccak256 (atomically; idempotent) and returns the hash."""
        digest = keccak256(data)
        path = self.root_dir / object_path(digest)
        if not path.exists():
            atomic_write(path, data)
        return digest

    def put_manifest(self, root: bytes, data: bytes) -> None:
        atomic_write(self.root_dir / manifest_path(root), data)

    def put_proof(self, root: bytes, index: int, data: bytes) -> None:
        atomic_write(self.root_dir / proof_path(root, index), data)

    def put_spec(self, root: bytes, data: bytes) -> None:
        atomic_write(self.root_dir / spec_path(root), data)

    def has_object(self, digest: bytes, verify: bool = False) -> bool:
        """Whether the object is stored (and, with `verify`, whether its bytes hash right)."""
        path = self.root_dir / object_path(digest)
        if not path.is_file():
            return False
        return not verify or keccak256(path.read_bytes()) == digest

    # reading (BundleSource)

    def _read(self, relative: str, max_bytes: int) -> bytes:
        path = self.root_dir / relative
        try:
            # non-blocking open: a FIFO put where a file belongs must not hang the reader
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise FetchError(FetchFailure.MISSING, relative, "not a regular file")
                data = fh.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise FetchError(FetchFailure.MISSING, relative) from None
        except OSError as exc:
            raise FetchError(FetchFailure.UNAVAILABLE, relative, str(exc)) from None
        if len(data) > max_bytes:
            raise FetchError(FetchFailure.TOO_LARGE, relative, f"over {max_bytes} bytes")
        return data

    def manifest(self, root: bytes, max_bytes: int) -> bytes:
        return self._read(manifest_path(root), max_bytes)

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes:
        return self._read(proof_path(root, index), max_bytes)

    def object(self, digest: bytes, max_bytes: int) -> bytes:
        return self._read(object_path(digest), max_bytes)

    def spec(self, root: bytes, max_bytes: int) -> bytes:
        return self._read(spec_path(root), max_bytes)


@dataclass(frozen=True)
class HttpLimits:
    timeout_s: float = 10.0
    """Whole-request deadline (connect, headers and body) for one attempt."""
    retries: int = 2
    """Extra attempts after a transient failure (timeout, connection error, 5xx, truncation)."""
    backoff_s: float = 0.25
    """Pause before the first retry; doubled before each further one."""
    min_rate_bps: float = 8192.0
    """Slowest average rate a body may arrive at, counted from its headers (bytes/second;
    0 turns the floor off)."""
    rate_grace_s: float = 2.0
    """Time a body is given before the rate floor applies: by `t` seconds after the headers,
    at least `min_rate_bps * (t - rate_grace_s)` bytes must have arrived (or all of them)."""


class HttpSource:
    """A provider's bundle server, read over HTTP with bounded size, time, rate and retries.

    The sync methods run their own event loop (call them from a thread without one; an
    async oracle should run verification in an executor, where re-execution belongs anyway).
    `deadline` (a `time.monotonic()` instant) bounds every fetch and retry as a whole.
    `access` (a reader's token for one bundle) is sent with every request, and objects are
    then asked for under that bundle.
    """

    def __init__(
        self,
        base_url: str,
        limits: HttpLimits | None = None,
        deadline: float | None = None,
        access: BundleAccess | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = limits or HttpLimits()
        self.deadline = deadline
        self.access = access

    def until(self, deadline: float) -> HttpSource:
        """The same server, every fetch ending by `deadline` (monotonic) at the latest."""
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        return HttpSource(self.base_url, self.limits, deadline, self.access)

    def object_path(self, digest: bytes) -> str:
        """Where this source asks for the object `digest`."""
        if self.access is None:
            return object_path(digest)
        return bundle_object_path(self.access.root, digest)

    def _remaining(self, relative: str) -> float:
        """Seconds left before the overall deadline; FetchError(TIMEOUT) when none are."""
        if self.deadline is None:
            return self.limits.timeout_s
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise FetchError(FetchFailure.TIMEOUT, relative, "the verification deadline passed")
        return left

    async def aget(
        self, relative: str, max_bytes: int, session: aiohttp.ClientSession | None = None
    ) -> bytes:
        """The bytes at `relative`, with retries; over `session`'s connections if given."""
        delay = self.limits.backoff_s
        last: FetchError | None = None
        for attempt in range(self.limits.retries + 1):
            if attempt:
                await asyncio.sleep(min(delay, self._remaining(relative)))
                delay *= 2
            total = min(self.limits.timeout_s, self._remaining(relative))
            try:
                return await self._get_once(relative, max_bytes, total, session)
            except FetchError as exc:
                if not (exc.transient or exc.failure == FetchFailure.TOO_SLOW):
                    raise
                last = exc
        assert last is not None
        raise last  # TOO_SLOW on the last attempt is final: the server drips

    async def _read_body(
        self, resp: aiohttp.ClientResponse, relative: str, max_bytes: int
    ) -> bytes:
        """The body, at most `max_bytes`, arriving no slower than the rate floor."""
        floor = self.limits.min_rate_bps
        started = time.monotonic()
        body = bytearray()
        while True:
            wait: float | None = None  # no floor: only the whole-request deadline
            if floor > 0:
                wait = started + self.limits.rate_grace_s + len(body) / floor - time.monotonic()
                if wait <= 0:
                    raise self._too_slow(relative, len(body), started)
            try:
                async with asyncio.timeout(wait) as window:
                    chunk = await resp.content.read(1 << 16)
            except TimeoutError:
                if window.expired():
                    raise self._too_slow(relative, len(body), started) from None
                raise  # the whole-request deadline
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(FetchFailure.TOO_LARGE, relative, f"over {max_bytes} bytes")

    def _too_slow(self, relative: str, got: int, started: float) -> FetchError:
        elapsed = time.monotonic() - started
        return FetchError(
            FetchFailure.TOO_SLOW,
            relative,
            f"{got} bytes in {elapsed:.1f}s, under {self.limits.min_rate_bps:.0f} B/s "
            f"after {self.limits.rate_grace_s:g}s",
        )

    async def _get_once(
        self,
        relative: str,
        max_bytes: int,
        total_s: float,
        session: aiohttp.ClientSession | None = None,
    ) -> bytes:
        url = f"{self.base_url}/{relative}"
        timeout = aiohttp.ClientTimeout(total=total_s)
        headers = {} if self.access is None else {"Authorization": self.access.authorization}
        try:
            async with contextlib.AsyncExitStack() as stack:
                if session is None:
                    session = await stack.enter_async_context(_session())
                resp = await stack.enter_async_context(
                    session.get(url, allow_redirects=False, timeout=timeout, headers=headers)
                )
                if resp.status == 404:
                    raise FetchError(FetchFailure.MISSING, relative)
                if resp.status in (401, 403):
                    raise FetchError(
                        FetchFailure.UNAVAILABLE, relative, f"HTTP {resp.status}: access refused"
                    )
                if resp.status != 200:
                    raise FetchError(FetchFailure.UNAVAILABLE, relative, f"HTTP {resp.status}")
                declared = resp.content_length
                if declared is not None and declared > max_bytes:
                    raise FetchError(FetchFailure.TOO_LARGE, relative, f"declares {declared} bytes")
                body = await self._read_body(resp, relative, max_bytes)
                if declared is not None and len(body) != declared:
                    raise FetchError(
                        FetchFailure.UNAVAILABLE, relative, f"truncated: {len(body)} of {declared}"
                    )
                return body
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(FetchFailure.TIMEOUT, relative, f"after {total_s:.3g}s") from None
        except aiohttp.InvalidURL:  # the server's address itself is unusable: no retry helps
            raise FetchError(FetchFailure.MISSING, relative, "invalid URL") from None
        except (aiohttp.ClientError, OSError, ValueError, EOFError) as exc:
            raise FetchError(FetchFailure.UNAVAILABLE, relative, type(exc).__name__) from None
        except MemoryError:
            raise  # the reader's own limit, not the server's doing
        except Exception as exc:  # whatever else a hostile server provokes in the client
            raise FetchError(
                FetchFailure.UNAVAILABLE, relative, f"unexpected {type(exc).__name__}"
            ) from None

    def _run(self, relative: str, max_bytes: int) -> bytes:
        return asyncio.run(self.aget(relative, max_bytes))

    def check_objects(self, digests: Sequence[bytes], max_bytes: int) -> list[FetchError | None]:
        """For each digest, None if its object is served and hashes to it, else the
        FetchError; one after another over one connection (the bytes are not kept)."""
        return asyncio.run(self._check_objects(digests, max_bytes))

    async def _check_objects(
        self, digests: Sequence[bytes], max_bytes: int
    ) -> list[FetchError | None]:
        out: list[FetchError | None] = []
        async with _session() as session:
            for digest in digests:
                relative = self.object_path(digest)
                try:
                    data = await self.aget(relative, max_bytes, session)
                except FetchError as exc:
                    out.append(exc)
                    continue
                ok = keccak256(data) == digest
                out.append(
                    None
                    if ok
                    else FetchError(FetchFailure.HASH_MISMATCH, relative, f"{len(data)} bytes")
                )
        return out

    def manifest(self, root: bytes, max_bytes: int) -> bytes:
        return self._run(manifest_path(root), max_bytes)

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes:
        return self._run(proof_path(root, index), max_bytes)

    def object(self, digest: bytes, max_bytes: int) -> bytes:
        return self._run(self.object_path(digest), max_bytes)

    def spec(self, root: bytes, max_bytes: int) -> bytes:
        return self._run(spec_path(root), max_bytes)

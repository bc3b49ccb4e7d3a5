"""Where bundles live: a content-addressed folder, readable locally or over HTTP.

Layout (the same paths are served by `neurotoken.provider.server`):

    objects/<keccak256 hex>                   shard outputs, named by the hash of their bytes
    bundles/<root hex>/manifest               the manifest of the bundle committed as <root>
    bundles/<root hex>/proofs/<index>         the inclusion proof of shard <index>

A `BundleSource` only moves bytes, within a size bound and a time bound; it raises
`FetchError` (and nothing else) when it cannot. Checking what comes back is the reader's
job: `fetch_object` hashes every object it returns.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiohttp

from neurotoken.jobs.canonical import keccak256


class FetchFailure(StrEnum):
    MISSING = "not found"
    TOO_LARGE = "larger than allowed"
    TIMEOUT = "timed out"
    UNAVAILABLE = "unavailable"
    HASH_MISMATCH = "bytes do not match their hash"


class FetchError(Exception):
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


def object_path(digest: bytes) -> str:
    return f"objects/0x{digest.hex()}"


def manifest_path(root: bytes) -> str:
    return f"bundles/0x{root.hex()}/manifest"


def proof_path(root: bytes, index: int) -> str:
    return f"bundles/0x{root.hex()}/proofs/{index}"


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
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
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


@dataclass(frozen=True)
class HttpLimits:
    timeout_s: float = 10.0
    """Whole-request deadline (connect, headers and body) for one attempt."""
    retries: int = 2
    """Extra attempts after a transient failure (timeout, connection error, 5xx, truncation)."""
    backoff_s: float = 0.25
    """Pause before the first retry; doubled before each further one."""


class HttpSource:
    """A provider's bundle server, read over HTTP with bounded size, time and retries.

    The sync methods run their own event loop (call them from a thread without one; an
    async oracle should run verification in an executor, where re-execution belongs anyway).
    """

    def __init__(self, base_url: str, limits: HttpLimits | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.limits = limits or HttpLimits()

    async def aget(self, relative: str, max_bytes: int) -> bytes:
        delay = self.limits.backoff_s
        last: FetchError | None = None
        for attempt in range(self.limits.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                return await self._get_once(relative, max_bytes)
            except FetchError as exc:
                if not exc.transient:
                    raise
                last = exc
        assert last is not None
        raise last

    async def _get_once(self, relative: str, max_bytes: int) -> bytes:
        url = f"{self.base_url}/{relative}"
        timeout = aiohttp.ClientTimeout(total=self.limits.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
                session.get(url, allow_redirects=False) as resp,
            ):
                if resp.status == 404:
                    raise FetchError(FetchFailure.MISSING, relative)
                if resp.status != 200:
                    raise FetchError(FetchFailure.UNAVAILABLE, relative, f"HTTP {resp.status}")
                declared = resp.content_length
                if declared is not None and declared > max_bytes:
                    raise FetchError(FetchFailure.TOO_LARGE, relative, f"declares {declared} bytes")
                body = bytearray()
                while True:
                    chunk = await resp.content.read(1 << 16)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchError(
                            FetchFailure.TOO_LARGE, relative, f"over {max_bytes} bytes"
                        )
                if declared is not None and len(body) != declared:
                    raise FetchError(
                        FetchFailure.UNAVAILABLE, relative, f"truncated: {len(body)} of {declared}"
                    )
                return bytes(body)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(
                FetchFailure.TIMEOUT, relative, f"after {self.limits.timeout_s}s"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError(FetchFailure.UNAVAILABLE, relative, type(exc).__name__) from None

    def _run(self, relative: str, max_bytes: int) -> bytes:
        return asyncio.run(self.aget(relative, max_bytes))

    def manifest(self, root: bytes, max_bytes: int) -> bytes:
        return self._run(manifest_path(root), max_bytes)

    def proof(self, root: bytes, index: int, max_bytes: int) -> bytes:
        return self._run(proof_path(root, index), max_bytes)

    def object(self, digest: bytes, max_bytes: int) -> bytes:
        return self._run(object_path(digest), max_bytes)

"""A job's client downloads its result: every shard output of the bundle, checked.

    result = fetch_result(bundle_uri, root, client_key, chain_id, market, Path("result"))

The client signs a bundle access token with its own key (`neurotoken.proofs.access`; the
provider serves a bundle to its job's client and oracles only), then fetches the manifest
and checks it against the root committed on chain (the root recomputed from its leaves),
fetches the spec (its keccak256 is the manifest's spec hash; its kind bounds each shard's
size) and every output, each hashed against its leaf. Files land in `out_dir`:
`manifest.json`, `spec.json` and `shard-<index>` (5 digits); an output already there that
hashes right is not fetched again, so an interrupted download resumes. The token is
re-signed when it nears its expiry, so a 65,536-shard result needs no special care.

Fetch it during the job's verdict window: the provider must serve the whole result to its
client until `RESULT_RETENTION_S` after the verdict deadline (docs/proofs.md, section 5).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from neurotoken.errors import NeurotokenError
from neurotoken.jobs.canonical import MAX_JSON_BYTES, keccak256
from neurotoken.jobs.spec import SpecError, max_shard_bytes, parse_spec
from neurotoken.proofs.access import TOKEN_LIFETIME_S, BundleAccess
from neurotoken.proofs.bundle import (
    MAX_MANIFEST_BYTES,
    BundleError,
    Manifest,
    from_hex,
    parse_manifest,
)
from neurotoken.proofs.merkle import MerkleTree
from neurotoken.proofs.store import (
    FetchError,
    HttpLimits,
    HttpSource,
    LocalStore,
    atomic_write,
    manifest_path,
    spec_path,
)

RENEW_BEFORE_S = 120
"""A token this close to its expiry is replaced before the next request."""

Get = Callable[[str, bytes, int], Awaitable[bytes]]
"""get(what, digest, max_bytes): the manifest, the spec or the object `digest`."""


class ResultError(NeurotokenError):
    """The result could not be had, or what was served is not the committed result."""


@dataclass(frozen=True)
class FetchedResult:
    root: bytes
    manifest: Manifest
    folder: Path
    shards: list[Path]
    fetched: int
    """Outputs downloaded now (the others were already in the folder)."""


def shard_file(out_dir: Path, index: int) -> Path:
    return out_dir / f"shard-{index:05d}"


def fetch_result(
    bundle_uri: str,
    root: bytes,
    private_key: bytes | str,
    chain_id: int,
    market: str,
    out_dir: Path,
    *,
    limits: HttpLimits | None = None,
    lifetime_s: float = TOKEN_LIFETIME_S,
) -> FetchedResult:
    """Downloads and checks every output of the bundle `root` from `bundle_uri` (the bundle
    URI the provider submitted: its server's base URL, or a local folder) as the reader
    whose key is `private_key`; ResultError when it cannot."""
    out_dir = Path(out_dir)
    try:
        parsed = urllib.parse.urlparse(bundle_uri)
    except ValueError:
        raise ResultError(f"unparsable bundle URI {bundle_uri[:80]!r}") from None
    if parsed.scheme in ("http", "https"):
        reader = _HttpReader(bundle_uri, root, private_key, chain_id, market, limits, lifetime_s)
        return asyncio.run(reader.download(out_dir))
    if parsed.scheme == "file" or (parsed.scheme == "" and bundle_uri.startswith("/")):
        store = LocalStore(Path(urllib.parse.unquote(parsed.path)))

        async def get(what: str, digest: bytes, max_bytes: int) -> bytes:
            if what == "manifest":
                return store.manifest(root, max_bytes)
            if what == "spec":
                return store.spec(root, max_bytes)
            return store.object(digest, max_bytes)

        return asyncio.run(_download(get, root, out_dir))
    raise ResultError(f"unsupported bundle URI {bundle_uri[:80]!r}")


@dataclass
class _HttpReader:
    """Reads one bundle over HTTP with a token it renews before it expires."""

    base_url: str
    root: bytes
    private_key: bytes | str
    chain_id: int
    market: str
    limits: HttpLimits | None
    lifetime_s: float
    _source: HttpSource | None = None
    _renew_at: float = 0.0

    def source(self) -> HttpSource:
        now = time.time()
        if self._source is None or now >= self._renew_at:
            access = BundleAccess.sign(
                self.private_key, self.chain_id, self.market, self.root,
                lifetime_s=self.lifetime_s, now=now,
            )  # fmt: skip
            self._source = HttpSource(self.base_url, self.limits, access=access)
            self._renew_at = now + max(1.0, self.lifetime_s - RENEW_BEFORE_S)
        return self._source

    async def download(self, out_dir: Path) -> FetchedResult:
        async with aiohttp.ClientSession(auto_decompress=False) as session:

            async def get(what: str, digest: bytes, max_bytes: int) -> bytes:
                src = self.source()
                if what == "manifest":
                    relative = manifest_path(self.root)
                elif what == "spec":
                    relative = spec_path(self.root)
                else:
                    relative = src.object_path(digest)
                return await src.aget(relative, max_bytes, session)

            return await _download(get, self.root, out_dir)


async def _download(fetch: Get, root: bytes, out_dir: Path) -> FetchedResult:
    try:
        raw = await fetch("manifest", b"", MAX_MANIFEST_BYTES)
        manifest = parse_manifest(raw)
    except (FetchError, BundleError) as exc:
        raise ResultError(f"manifest: {exc}") from None
    leaves = manifest.leaf_hashes()
    if from_hex(manifest.root) != root or MerkleTree.of_shards(leaves).root != root:
        raise ResultError("the manifest served is not the committed result root's")
    try:
        spec_raw = await fetch("spec", b"", MAX_JSON_BYTES)
    except FetchError as exc:
        raise ResultError(f"spec: {exc}") from None
    if keccak256(spec_raw) != from_hex(manifest.spec_hash):
        raise ResultError("the spec served does not hash to the manifest's spec hash")
    try:
        bound = max_shard_bytes(parse_spec(spec_raw))
    except (SpecError, ValueError) as exc:
        raise ResultError(f"spec: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "manifest.json", raw)
    atomic_write(out_dir / "spec.json", spec_raw)
    paths: list[Path] = []
    fetched = 0
    for index, leaf in enumerate(leaves):
        path = shard_file(out_dir, index)
        paths.append(path)
        if path.is_file() and keccak256(path.read_bytes()) == leaf:
            continue
        try:
            data = await fetch("object", leaf, bound)
        except FetchError as exc:
            raise ResultError(f"shard {index}: {exc}") from None
        if keccak256(data) != leaf:
            raise ResultError(f"shard {index}: {len(data)} bytes that do not match its hash")
        atomic_write(path, data)
        fetched += 1
    return FetchedResult(root, manifest, out_dir, paths, fetched)


__all__ = ["RENEW_BEFORE_S", "FetchedResult", "ResultError", "fetch_result", "shard_file"]

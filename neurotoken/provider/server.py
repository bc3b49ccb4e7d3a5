"""Serving a bundle store over HTTP, read-only, to the readers of each bundle (aiohttp).

Routes mirror the store's layout, under the bundle they belong to:

    GET /bundles/0x<root>/manifest | /spec | /proofs/<index> | /objects/0x<hash>
    GET /healthz

A bundle is a job's result: only its readers may fetch it (the job's client and its oracles,
decided by the `authorize(address, root)` of a `BundleGate`). Every bundle request carries
an access token for that root (`neurotoken.proofs.access`: `Authorization: NTK-Bundle
<address> <expires> <signature>`); a missing, malformed, expired or forged token gets 401, a
signer the gate does not authorize 403, both with a short text body and never a byte of the
bundle. An object is served only under a bundle whose manifest lists it, so a token for one
root opens no other job's outputs. Tokens that passed are kept (LRU, bounded) until they
expire, so a verification fetching 65,536 objects recovers one signature, not 65,536.

`make_app(store, public=True)` serves everything to anyone, with the legacy
`/objects/0x<hash>` route too: only for local demos and tests that have no chain.

Path parts are matched against strict patterns before any file is touched, so nothing
outside the store can be named.

Every answer allows cross-origin reads (CORS: any origin, the Authorization header, GET),
so that a client's browser (the web app) can fetch its result: the access token is the only
credential (no cookies), and a page can get one only by asking the reader's wallet to sign.

`BundleServer` runs the server on a background thread (tests, the demo, the provider agent);
`python -m neurotoken.provider serve` runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

from neurotoken.errors import ConfigError
from neurotoken.proofs.access import MAX_TOKEN_AHEAD_S, SCHEME, check_token
from neurotoken.proofs.bundle import MAX_MANIFEST_BYTES, BundleError, from_hex, parse_manifest
from neurotoken.proofs.store import LocalStore
from neurotoken.provider.faults import Crash

HEX = r"0x[0-9a-f]{64}"

Authorize = Callable[[str, bytes], bool]
"""`authorize(address, root)`: whether the checksummed `address` may read bundle `root`.
Called from a worker thread; it may block (chain reads) and should cache what it learns."""


@dataclass(frozen=True)
class BundleGate:
    """Who may read which bundle, and the deployment tokens must name."""

    chain_id: int
    market: str
    authorize: Authorize
    max_ahead_s: float = MAX_TOKEN_AHEAD_S
    clock: Callable[[], float] = field(default=time.time)
    """Unix seconds (tests move it)."""
    cache_size: int = 4096
    """Admitted (token, root) pairs remembered until their token expires."""
    manifests: int = 16
    """Bundles whose leaf sets are kept in memory (one 65,536-shard bundle: about 6 MB)."""


def _refusal(status: int, text: str) -> web.Response:
    headers = {"WWW-Authenticate": f'{SCHEME} realm="bundles"'} if status == 401 else None
    return web.Response(status=status, text=text + "\n", headers=headers)


class _Gatekeeper:
    """The per-app state of a gate: admitted tokens, checks in flight and the leaf sets of
    bundles (all touched from the server's event loop only)."""

    def __init__(self, gate: BundleGate | None, base: Path) -> None:
        self.gate = gate
        self.base = base
        self.admitted: OrderedDict[tuple[str, bytes], int] = OrderedDict()
        self.checking: dict[tuple[str, bytes], asyncio.Task[tuple[int, str] | None]] = {}
        self.leaves: OrderedDict[bytes, frozenset[bytes]] = OrderedDict()

    async def admit(self, request: web.Request, root: bytes) -> web.Response | None:
        """None if the request may read bundle `root`, else the refusal to send."""
        gate = self.gate
        if gate is None:
            return None
        header = request.headers.get("Authorization", "")
        key = (header, root)
        expires = self.admitted.get(key)
        if expires is not None:
            if gate.clock() < expires:
                self.admitted.move_to_end(key)
                return None
            del self.admitted[key]
        # one check per token, however many requests carry it at once
        task = self.checking.get(key)
        if task is None:
            task = asyncio.ensure_future(self._check(gate, header, root))
            self.checking[key] = task
            task.add_done_callback(lambda _: self.checking.pop(key, None))
        refusal = await asyncio.shield(task)
        return None if refusal is None else _refusal(*refusal)

    async def _check(self, gate: BundleGate, header: str, root: bytes) -> tuple[int, str] | None:
        now = gate.clock()
        checked = check_token(header, gate.chain_id, gate.market, root, now, gate.max_ahead_s)
        if checked.token is None:
            return 401, checked.problem
        loop = asyncio.get_running_loop()
        try:
            allowed = await loop.run_in_executor(None, gate.authorize, checked.token.address, root)
        except Exception:  # the chain or the state file is unreachable: try again later
            return 503, "cannot check access now"
        if not allowed:
            return 403, "this address may not read this bundle"
        self.admitted[(header, root)] = checked.token.expires
        while len(self.admitted) > gate.cache_size:
            self.admitted.popitem(last=False)
        return None

    async def lists(self, root: bytes, digest: bytes) -> bool:
        """Whether the manifest of bundle `root` (as this store holds it) lists `digest`."""
        leaves = self.leaves.get(root)
        if leaves is None:
            loaded = await asyncio.get_running_loop().run_in_executor(None, self._load, root)
            if loaded is None:
                return False
            leaves = loaded
            self.leaves[root] = leaves
            limit = self.gate.manifests if self.gate is not None else 16
            while len(self.leaves) > limit:
                self.leaves.popitem(last=False)
        else:
            self.leaves.move_to_end(root)
        return digest in leaves

    def _load(self, root: bytes) -> frozenset[bytes] | None:
        path = self.base / "bundles" / f"0x{root.hex()}" / "manifest"
        try:
            with path.open("rb") as fh:
                manifest = parse_manifest(fh.read(MAX_MANIFEST_BYTES + 1))
        except (OSError, BundleError):
            return None
        if from_hex(manifest.root) != root:
            return None
        return frozenset(manifest.leaf_hashes())


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Max-Age": "600",
}


@web.middleware
async def _cors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Cross-origin reads: a preflight is answered here; every answer, refusals included,
    carries the CORS headers (a browser shows a page nothing it was refused without them)."""
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CORS_HEADERS)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    response.headers.update(CORS_HEADERS)
    return response


def make_app(
    store: LocalStore,
    gate: BundleGate | None = None,
    *,
    public: bool = False,
    crash: Crash | None = None,
) -> web.Application:
    """The bundle server's app: every bundle behind `gate`, or (`public=True`, local use
    only) open to anyone. One of the two must be given. `crash` is fault injection for the
    crash campaigns (`neurotoken.provider.faults`, point ``mid_serve``); None in production."""
    if (gate is None) == (not public):
        raise ValueError("make_app needs a BundleGate, or public=True (local use only)")
    base = Path(store.root_dir)
    keeper = _Gatekeeper(gate, base)

    def send(relative: str) -> web.StreamResponse:
        path = base / relative
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    def root_of(request: web.Request) -> bytes:
        return bytes.fromhex(request.match_info["root"][2:])

    async def get_object(request: web.Request) -> web.StreamResponse:
        return send(f"objects/{request.match_info['digest']}")

    async def get_bundle_object(request: web.Request) -> web.StreamResponse:
        root = root_of(request)
        refused = await keeper.admit(request, root)
        if refused is not None:
            return refused
        digest = request.match_info["digest"]
        if not await keeper.lists(root, bytes.fromhex(digest[2:])):
            return web.Response(status=404, text="not an object of this bundle\n")
        if crash is not None:
            crash("mid_serve", request.match_info["root"])
        return send(f"objects/{digest}")

    async def get_manifest(request: web.Request) -> web.StreamResponse:
        refused = await keeper.admit(request, root_of(request))
        if refused is not None:
            return refused
        return send(f"bundles/{request.match_info['root']}/manifest")

    async def get_spec(request: web.Request) -> web.StreamResponse:
        refused = await keeper.admit(request, root_of(request))
        if refused is not None:
            return refused
        return send(f"bundles/{request.match_info['root']}/spec")

    async def get_proof(request: web.Request) -> web.StreamResponse:
        refused = await keeper.admit(request, root_of(request))
        if refused is not None:
            return refused
        info = request.match_info
        if crash is not None:
            crash("mid_serve", info["root"])
        return send(f"bundles/{info['root']}/proofs/{int(info['index'])}")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[_cors])
    if public:
        app.router.add_get(f"/objects/{{digest:{HEX}}}", get_object)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/objects/{{digest:{HEX}}}", get_bundle_object)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/manifest", get_manifest)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/spec", get_spec)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/proofs/{{index:[0-9]{{1,6}}}}", get_proof)
    app.router.add_get("/healthz", health)
    return app


class BundleServer:
    """An HTTP server for a store (or any aiohttp app) on a background thread.

    >>> with BundleServer(make_app(store, gate)) as server:   # doctest: +SKIP
    ...     HttpSource(server.url, access=access).manifest(root, 1 << 20)
    """

    def __init__(
        self,
        app: web.Application,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout_s: float = 2.0,
    ) -> None:
        self.app = app
        self.shutdown_timeout_s = shutdown_timeout_s
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.shutdown_timeout_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    def start(self) -> BundleServer:
        """Starts serving; ConfigError (one line) if the address cannot be bound."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        except OSError as exc:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise ConfigError(
                f"cannot serve bundles on {self.host}:{self.port}: {exc.strerror or exc}; "
                "choose another --serve-port (or stop what holds this one)"
            ) from None
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        # handlers still running past the shutdown timeout (a deliberately slow server, a
        # client that went away) are cancelled here rather than destroyed at exit
        asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> BundleServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _cancel_others() -> None:
    """Cancels every other task of the running loop and waits for them to end."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def serve_store(
    store: LocalStore, host: str, port: int, gate: BundleGate | None = None, public: bool = False
) -> None:
    """Serves `store` in the foreground until interrupted (behind `gate`, or `public`)."""
    web.run_app(make_app(store, gate, public=public), host=host, port=port, access_log=None)

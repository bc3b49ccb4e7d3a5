"""Serving a bundle store over HTTP, read-only, for remote oracles (aiohttp).

Routes mirror the store's layout: `GET /objects/0x<hash>`, `GET /bundles/0x<root>/manifest`,
`GET /bundles/0x<root>/proofs/<index>`, `GET /bundles/0x<root>/spec`, plus `GET /healthz`.
Path parts are matched against strict patterns before any file is touched, so nothing
outside the store can be named.

`BundleServer` runs the server on a background thread (tests, the demo, the provider agent);
`python -m neurotoken.provider serve` runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

from aiohttp import web

from neurotoken.proofs.store import LocalStore

HEX = r"0x[0-9a-f]{64}"


def make_app(store: LocalStore) -> web.Application:
    base = Path(store.root_dir)

    def send(relative: str) -> web.StreamResponse:
        path = base / relative
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def get_object(request: web.Request) -> web.StreamResponse:
        return send(f"objects/{request.match_info['digest']}")

    async def get_manifest(request: web.Request) -> web.StreamResponse:
        return send(f"bundles/{request.match_info['root']}/manifest")

    async def get_spec(request: web.Request) -> web.StreamResponse:
        return send(f"bundles/{request.match_info['root']}/spec")

    async def get_proof(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return send(f"bundles/{info['root']}/proofs/{int(info['index'])}")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get(f"/objects/{{digest:{HEX}}}", get_object)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/manifest", get_manifest)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/spec", get_spec)
    app.router.add_get(f"/bundles/{{root:{HEX}}}/proofs/{{index:[0-9]{{1,6}}}}", get_proof)
    app.router.add_get("/healthz", health)
    return app


class BundleServer:
    """An HTTP server for a store (or any aiohttp app) on a background thread.

    >>> with BundleServer(make_app(store)) as server:   # doctest: +SKIP
    ...     HttpSource(server.url).manifest(root, 1 << 20)
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
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
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


def serve_store(store: LocalStore, host: str, port: int) -> None:
    """Serves `store` in the foreground until interrupted."""
    web.run_app(make_app(store), host=host, port=port, access_log=None)

"""A static file server for the built app (`web/dist`) with the network's config.json."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from neurotoken.errors import ConfigError


class _Handler(SimpleHTTPRequestHandler):
    config_bytes = b""

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/config.json", "./config.json"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(self.config_bytes)))
            self.end_headers()
            self.wfile.write(self.config_bytes)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a page's requests are not logged (http.server writes each to stderr)."""


class AppServer:
    """Serves `dist` and `config` on host:port (port 0: any free one) in a thread."""

    def __init__(self, dist: Path, config: dict[str, Any], host: str = "127.0.0.1", port: int = 0):
        if not (dist / "index.html").is_file():
            raise ConfigError(f"the app is not built ({dist}/index.html missing): run `make web`")
        handler = type("Handler", (_Handler,), {"config_bytes": json.dumps(config).encode()})
        self._server = ThreadingHTTPServer((host, port), partial(handler, directory=str(dist)))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> AppServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

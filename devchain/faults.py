"""Faults on the dev chain: an RPC proxy in front of the node that drops, delays and breaks
requests (`FaultyRpcProxy`), counting what it did (`FaultCounts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from devchain.anvil import free_port


@dataclass
class FaultCounts:
    requests: int = 0
    dropped: int = 0
    delayed: int = 0
    errored: int = 0


class FaultyRpcProxy:
    """An HTTP proxy in front of a JSON-RPC node that, at random (seeded), closes the
    connection without an answer (`drop`), answers late (`delay`, up to `max_delay_s`), or
    answers HTTP 502 / a JSON-RPC error (`error`). Runs on a background thread.

    While `job_logs_until` is set (a block number), it also answers every `eth_getLogs`
    filtered by a job id (topic 1, as `neurotoken.market.records.JobReader` asks) with only
    the logs up to that block, as a node whose log index lags its state would: the record
    rebuilt from them no longer hashes to the digest the market stores."""

    def __init__(
        self,
        upstream: str,
        drop: float = 0.1,
        delay: float = 0.1,
        error: float = 0.1,
        max_delay_s: float = 1.0,
        seed: int = 1,
    ) -> None:
        self.upstream = upstream
        self.drop, self.delay, self.error = drop, delay, error
        self.max_delay_s = max_delay_s
        self.random = random.Random(seed)
        self.counts = FaultCounts()
        self.enabled = True
        self.job_logs_until: int | None = None
        self.lagged = 0
        """job log queries answered from the lagging index"""
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.counts.requests += 1
        roll = self.random.random()
        if self.enabled and roll < self.drop:
            self.counts.dropped += 1
            transport = request.transport
            if transport is not None:
                transport.close()
            raise ConnectionResetError("dropped by the fault proxy")
        roll -= self.drop if self.enabled else 0
        if self.enabled and roll < self.error:
            self.counts.errored += 1
            if self.random.random() < 0.5:
                return web.Response(status=502, text="bad gateway (fault proxy)")
            try:
                req_id = json.loads(body).get("id")
            except (ValueError, AttributeError):
                req_id = None
            return web.json_response(
                {"jsonrpc": "2.0", "id": req_id,
                 "error": {"code": -32603, "message": "internal error (fault proxy)"}}
            )  # fmt: skip
        roll -= self.error if self.enabled else 0
        if self.enabled and roll < self.delay:
            self.counts.delayed += 1
            await asyncio.sleep(self.random.random() * self.max_delay_s)
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            payload = await resp.read()
            until = self.job_logs_until
            if until is not None and resp.status == 200:
                payload = self._lag_job_logs(body, payload, until)
            return web.Response(body=payload, status=resp.status, content_type="application/json")

    def _lag_job_logs(self, body: bytes, payload: bytes, until: int) -> bytes:
        """The answer to a job-filtered eth_getLogs with the logs above `until` left out."""
        try:
            request, answer = json.loads(body), json.loads(payload)
        except ValueError:
            return payload
        if not isinstance(request, dict) or request.get("method") != "eth_getLogs":
            return payload
        params = request.get("params") or [{}]
        topics = params[0].get("topics") if isinstance(params[0], dict) else None
        if not isinstance(topics, list) or len(topics) < 2 or topics[1] is None:
            return payload
        logs = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(logs, list):
            return payload
        kept = [log for log in logs if int(log["blockNumber"], 16) <= until]
        if len(kept) == len(logs):
            return payload
        self.lagged += 1
        return json.dumps({**answer, "result": kept}).encode()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start(self) -> FaultyRpcProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

"""The oracle's HTTP face (aiohttp, on a background thread):

* ``GET /healthz``: 200 while the main loop ticks (503 once it has stalled), with head,
  cursor and lag;
* ``GET /metrics``: Prometheus text (jobs by state, verification latency, head lag,
  pending transactions, counters);
* ``GET /signatures/<jobId>``: this oracle's signed verdicts for the job (404 if none);
* ``POST /batch-signatures``: a batch signature over verdicts this oracle already signed
  one by one (409 if any differs, 503 in dry-run).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from neurotoken.market.verdicts import MarketDomain, SignedVerdict, Verdict, VerdictError
from oracle.keys import OracleKey
from oracle.logs import event, get_logger
from oracle.metrics import CONTENT_TYPE, Metrics
from oracle.store import Store

log = get_logger("api")
MAX_BATCH = 256


@dataclass
class ApiState:
    """What the handlers read; `domain` is set once the chain id is known."""

    store: Store
    metrics: Metrics
    key: OracleKey | None
    domain: MarketDomain | None = None
    stall_after_s: float = 30.0
    health_extra: Callable[[], dict[str, Any]] | None = None


def own_signed(state: ApiState, job_id: int) -> list[SignedVerdict]:
    if state.domain is None or state.key is None:
        return []
    out = []
    for row in state.store.signatures(job_id, own=True):
        if row.signer != state.key.address:
            continue
        verdict = state.store.verdict(row.job_id, row.result_root)
        if verdict is None or verdict.seed is None:
            continue
        out.append(
            SignedVerdict(
                domain=state.domain,
                kind="verdict",
                verdicts=(Verdict(row.job_id, row.result_root, verdict.seed, row.accepted),),
                signer=row.signer,
                signature=row.signature,
            )
        )
    return out


def make_app(state: ApiState) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        last = state.metrics.gauges.get("oracle_last_tick_timestamp_seconds", 0)
        ok = last > 0 and time.time() - last < state.stall_after_s
        body: dict[str, Any] = {
            "ok": ok,
            "dry_run": state.key is None,
            "address": None if state.key is None else state.key.address,
            "head": state.metrics.gauges.get("oracle_head_block"),
            "cursor": state.metrics.gauges.get("oracle_cursor_block"),
            "lag": state.metrics.gauges.get("oracle_head_lag_blocks"),
        }
        if state.health_extra is not None:
            body.update(state.health_extra())
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        counts = await asyncio.to_thread(state.store.counts_by_state)
        return web.Response(
            body=state.metrics.exposition(counts),
            headers={"Content-Type": CONTENT_TYPE, "X-Prometheus-Format": "0.0.4"},
        )

    async def signatures(request: web.Request) -> web.Response:
        job_id = int(request.match_info["job_id"])
        signed = await asyncio.to_thread(own_signed, state, job_id)
        if not signed:
            return web.json_response({"jobId": job_id, "signatures": []}, status=404)
        return web.json_response(
            {"jobId": job_id, "signatures": [json.loads(s.to_json()) for s in signed]}
        )

    async def batch(request: web.Request) -> web.Response:
        if state.key is None or state.domain is None:
            return web.json_response({"error": "dry-run oracle: signs nothing"}, status=503)
        try:
            doc = await request.json()
            items = doc["verdicts"]
            if not isinstance(items, list) or not 0 < len(items) <= MAX_BATCH:
                raise ValueError("verdicts must be a non-empty list")
            wanted = [
                Verdict(
                    int(v["jobId"]),
                    bytes.fromhex(str(v["resultRoot"])[2:]),
                    bytes.fromhex(str(v["seed"])[2:]),
                    bool(v["accepted"]),
                )
                for v in items
            ]
        except (ValueError, KeyError, TypeError, VerdictError) as exc:
            return web.json_response({"error": f"bad request: {str(exc)[:100]}"}, status=400)
        if len({v.job_id for v in wanted}) != len(wanted):
            return web.json_response({"error": "a job appears twice"}, status=400)
        for verdict in wanted:
            mine = await asyncio.to_thread(
                state.store.signatures, verdict.job_id, verdict.result_root, True
            )
            decided = await asyncio.to_thread(
                state.store.verdict, verdict.job_id, verdict.result_root
            )
            if (
                not any(r.accepted == verdict.accepted for r in mine)
                or decided is None
                or decided.seed != verdict.seed
            ):
                return web.json_response(
                    {"error": f"job {verdict.job_id}: not a verdict this oracle signed"},
                    status=409,
                )
        signed = state.key.sign_batch(state.domain, wanted)
        event(log, "batch_signed", jobs=[v.job_id for v in wanted])
        return web.Response(text=signed.to_json(), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/signatures/{job_id:[0-9]{1,20}}", signatures)
    app.router.add_post("/batch-signatures", batch)
    return app


class ApiServer:
    """Runs the app on its own event loop in a daemon thread."""

    def __init__(self, state: ApiState, host: str, port: int) -> None:
        self.state = state
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="api")
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(make_app(self.state), access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    def start(self) -> ApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        event(log, "http_started", url=self.url)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

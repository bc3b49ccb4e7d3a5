"""Faults on the dev chain: an RPC proxy in front of the node that drops, delays and breaks
requests and gives transient wrong answers (`FaultyRpcProxy`), counting what it did
(`FaultCounts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from neurotoken.ports import free_port


@dataclass
class FaultCounts:
    """What the proxy did, by kind (each request counts once in `requests`, and in at most
    one transport fault, `dropped`, `errored` or `delayed`, plus at most one wrong answer)."""

    requests: int = 0
    dropped: int = 0
    delayed: int = 0
    errored: int = 0
    stale_head: int = 0
    """eth_blockNumber / eth_getBlockByNumber("latest") answered with an earlier block"""
    missing_receipt: int = 0
    """eth_getTransactionReceipt answered null for a mined transaction"""
    empty_logs: int = 0
    """a job's eth_getLogs answered with no logs although it has some"""

    @property
    def faults(self) -> int:
        """Every fault injected, of all kinds."""
        return (
            self.dropped + self.delayed + self.errored
            + self.stale_head + self.missing_receipt + self.empty_logs
        )  # fmt: skip

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "dropped": self.dropped,
            "delayed": self.delayed,
            "errored": self.errored,
            "stale_head": self.stale_head,
            "missing_receipt": self.missing_receipt,
            "empty_logs": self.empty_logs,
            "faults": self.faults,
        }


HEAD_METHODS = frozenset({"eth_blockNumber", "eth_getBlockByNumber"})


def _rpc_method(body: bytes) -> tuple[str | None, list[Any]]:
    """The method and params of a single JSON-RPC request (None for a batch or garbage)."""
    try:
        request = json.loads(body)
    except ValueError:
        return None, []
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return None, []
    params = request.get("params")
    return request["method"], params if isinstance(params, list) else []


class FaultyRpcProxy:
    """An HTTP proxy in front of a JSON-RPC node that, at random (seeded), closes the
    connection without an answer (`drop`), answers late (`delay`, up to `max_delay_s`), or
    answers HTTP 502 / a JSON-RPC error (`error`). Runs on a background thread.

    It can also give wrong answers, each transient, as a lagging or load-balanced node
    gives them (the next request may well reach an up-to-date node):

    * `stale_head`: the probability that ``eth_blockNumber`` or
      ``eth_getBlockByNumber("latest")`` is answered with a block 1 to `stale_depth` below
      the head (a node behind the others);
    * `missing_receipt`: that ``eth_getTransactionReceipt`` of a mined transaction is
      answered null (a node that has not imported its block yet);
    * `empty_logs`: that an ``eth_getLogs`` filtered by a job id (topic 1, as
      `neurotoken.market.records.JobReader` asks) is answered with no logs although there
      are some (the record rebuilt from nothing does not match the digest the market stores,
      so a reader can tell). Unfiltered range queries are never emptied: a node that answers
      a range with no logs is indistinguishable from a range without any, for any client.

    Each is counted in `counts` only when the answer really was wrong (a stale head only
    when the head is above 0, a receipt only when it existed, logs only when there were).

    While `job_logs_until` is set (a block number), it also answers every `eth_getLogs`
    filtered by a job id with only the logs up to that block, as a node whose log index lags
    its state would: the record rebuilt from them no longer hashes to the digest the market
    stores."""

    def __init__(
        self,
        upstream: str,
        drop: float = 0.1,
        delay: float = 0.1,
        error: float = 0.1,
        max_delay_s: float = 1.0,
        seed: int = 1,
        *,
        stale_head: float = 0.0,
        stale_depth: int = 3,
        missing_receipt: float = 0.0,
        empty_logs: float = 0.0,
    ) -> None:
        self.upstream = upstream
        self.drop, self.delay, self.error = drop, delay, error
        self.max_delay_s = max_delay_s
        self.stale_head, self.stale_depth = stale_head, stale_depth
        self.missing_receipt, self.empty_logs = missing_receipt, empty_logs
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
        status, payload = await self._forward(body)
        if status == 200:
            if self.enabled:
                payload = await self._wrong_answer(body, payload)
            until = self.job_logs_until
            if until is not None:
                payload = self._lag_job_logs(body, payload, until)
        return web.Response(body=payload, status=status, content_type="application/json")

    async def _forward(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            return resp.status, await resp.read()

    async def _wrong_answer(self, body: bytes, payload: bytes) -> bytes:
        """The node's answer, or (at the configured odds) a wrong one of the request's kind."""
        method, params = _rpc_method(body)
        if method in HEAD_METHODS:
            if self._rolls(self.stale_head):
                return await self._stale(method, params, payload)
        elif method == "eth_getTransactionReceipt":
            if self._rolls(self.missing_receipt):
                return self._emptied(payload, None, "missing_receipt")
        elif method == "eth_getLogs" and _job_filtered(params) and self._rolls(self.empty_logs):
            return self._emptied(payload, [], "empty_logs")
        return payload

    def _rolls(self, odds: float) -> bool:
        """True with probability `odds` (no draw at all when it is 0: the seeded sequence of
        the other faults stays what it was without wrong answers)."""
        return odds > 0 and self.random.random() < odds

    async def _stale(self, method: str, params: list[Any], payload: bytes) -> bytes:
        """The answer of a node 1 to `stale_depth` blocks behind."""
        if method == "eth_getBlockByNumber" and (not params or params[0] != "latest"):
            return payload
        try:
            answer = json.loads(payload)
            result = answer["result"]
            head = int(result if method == "eth_blockNumber" else result["number"], 16)
        except (ValueError, KeyError, TypeError):
            return payload
        earlier = max(0, head - self.random.randint(1, self.stale_depth))
        if earlier == head:
            return payload
        if method == "eth_blockNumber":
            stale: Any = hex(earlier)
        else:
            full = bool(params[1]) if len(params) > 1 else False
            query = {"jsonrpc": "2.0", "id": 1, "method": method, "params": [hex(earlier), full]}
            status, raw = await self._forward(json.dumps(query).encode())
            try:
                stale = json.loads(raw)["result"] if status == 200 else None
            except (ValueError, KeyError):
                stale = None
            if not stale:
                return payload
        self.counts.stale_head += 1
        return json.dumps({**answer, "result": stale}).encode()

    def _emptied(self, payload: bytes, empty: Any, kind: str) -> bytes:
        """The answer with its result replaced by `empty`, counted under `kind` when the
        result was not empty already."""
        try:
            answer = json.loads(payload)
        except ValueError:
            return payload
        if not isinstance(answer, dict) or not answer.get("result"):
            return payload
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        return json.dumps({**answer, "result": empty}).encode()

    def _lag_job_logs(self, body: bytes, payload: bytes, until: int) -> bytes:
        """The answer to a job-filtered eth_getLogs with the logs above `until` left out."""
        method, params = _rpc_method(body)
        if method != "eth_getLogs" or not _job_filtered(params):
            return payload
        try:
            answer = json.loads(payload)
        except ValueError:
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


def _job_filtered(params: list[Any]) -> bool:
    """Whether eth_getLogs `params` filter by a job id (topic 1 set)."""
    query = params[0] if params else None
    topics = query.get("topics") if isinstance(query, dict) else None
    return isinstance(topics, list) and len(topics) >= 2 and topics[1] is not None

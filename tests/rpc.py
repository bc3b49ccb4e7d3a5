"""JSON-RPC straight to the node over one kept-alive HTTP connection, bypassing web3 and
ape: what the state machines (tests/stateful.py), the sale's invariant reads
(tests/sale/helpers.py) and the hostile-market machine (tests/oracle/rawchain.py) send through.
Through ape a transaction cost ~120 ms and a read ~6 ms here; through this, a few ms and
well under one.
"""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit


class RpcError(RuntimeError):
    """A JSON-RPC error answer (`code`, `message`, and `data`: revert data when it has any)."""

    def __init__(self, method: str, error: Mapping[str, Any]) -> None:
        self.method = method
        self.code = int(error.get("code", 0))
        self.message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"{method}: {self.code} {self.message} {str(self.data)[:200]}")

    def revert_data(self) -> bytes | None:
        """The revert data of an `execution reverted` answer (None if it carries none)."""
        data = self.data
        if isinstance(data, Mapping):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        return None


class Rpc:
    """JSON-RPC over one kept-alive HTTP connection (http.client: `requests` cost ~1 ms of
    Python a request here); single calls and batches. A request that fails on the wire is
    not retried (it may have been a transaction): the error propagates, and the next
    request opens a new connection."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)
        self.requests = 0
        """JSON-RPC requests sent (a batch counts each of its calls)."""
        self.round_trips = 0

    def post(self, payload: Any) -> Any:
        """Sends `payload` (a request or a batch) and returns the node's decoded answer."""
        self.round_trips += 1
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            body = json.dumps(payload)
            self._conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            response = self._conn.getresponse()
            raw = response.read()
        except BaseException:
            self._conn.close()
            self._conn = None
            raise
        if response.status != 200:
            raise RuntimeError(
                f"HTTP {response.status} from {self.host}:{self.port}: {raw[:200]!r}"
            )
        return json.loads(raw)

    def call(self, method: str, *params: Any) -> Any:
        """One request's result; RpcError if the node answers an error."""
        self.requests += 1
        answer = self.post(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        )
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Each call's result or RpcError (not raised: returned in its place), in order."""
        if not calls:
            return []
        self.requests += len(calls)
        first = next(self._ids)
        ids = [first + i for i in range(len(calls))]
        self._ids = itertools.count(first + len(calls))
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        answers = self.post(payload)
        by_id = {a["id"]: a for a in answers}
        assert set(by_id) == set(ids), f"the node answered ids {sorted(by_id)}, asked {ids}"
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            answer = by_id[i]
            out.append(RpcError(method, answer["error"]) if "error" in answer else answer["result"])
        return out

    def strict_batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """`batch`, raising the first error."""
        results = self.batch(calls)
        for result in results:
            if isinstance(result, RpcError):
                raise result
        return results

"""Prometheus text exposition (format 0.0.4), written by hand: a few counters, gauges and
one histogram are all the service needs."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class Histogram:
    buckets: Sequence[float] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.n += 1


class Metrics:
    """The service's metrics; safe to update from the main loop and read from HTTP."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, float] = {
            "oracle_reorgs_total": 0,
            "oracle_rpc_errors_total": 0,
            "oracle_peer_garbage_total": 0,
            "oracle_verifications_total": 0,
            "oracle_signatures_total": 0,
            "oracle_transactions_sent_total": 0,
            "oracle_transactions_replaced_total": 0,
            "oracle_settlements_total": 0,
        }
        self.gauges: dict[str, float] = {
            "oracle_head_block": 0,
            "oracle_cursor_block": 0,
            "oracle_head_lag_blocks": 0,
            "oracle_pending_transactions": 0,
            "oracle_verifications_running": 0,
            "oracle_last_tick_timestamp_seconds": 0,
        }
        self.latency = Histogram()

    def inc(self, name: str, by: float = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + by

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = value

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self.latency.observe(seconds)

    def render(self, jobs_by_state: Mapping[str, int]) -> str:
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP oracle_jobs Jobs in the oracle's store by state.",
                "# TYPE oracle_jobs gauge",
            ]
            lines += [f'oracle_jobs{{state="{s}"}} {n}' for s, n in sorted(jobs_by_state.items())]
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {_num(value)}"]
            for name, value in sorted(self.counters.items()):
                lines += [f"# TYPE {name} counter", f"{name} {_num(value)}"]
            h = self.latency
            lines += [
                "# HELP oracle_verification_seconds Wall time of one verification.",
                "# TYPE oracle_verification_seconds histogram",
            ]
            lines += [
                f'oracle_verification_seconds_bucket{{le="{b}"}} {c}'
                for b, c in zip(h.buckets, h.counts, strict=True)
            ]
            lines += [
                f'oracle_verification_seconds_bucket{{le="+Inf"}} {h.n}',
                f"oracle_verification_seconds_sum {_num(h.total)}",
                f"oracle_verification_seconds_count {h.n}",
            ]
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_text(text: str) -> dict[str, float]:
    """Sample name (with labels) -> value, for tests and `oracle status`."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out

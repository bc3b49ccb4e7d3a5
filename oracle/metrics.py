"""The service's Prometheus metrics, held in `prometheus_client` objects: a few counters
and gauges, the jobs-by-state gauge and one histogram, exposed in the text format 0.0.4.

Each `Metrics` has a registry of its own (never the global default one): tests run several
oracles in one process, and each must serve only its own values.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

# No `<name>_created` series beside the counters and the histogram: the exposition keeps
# the series it always had. prometheus_client has no per-registry switch for this.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# Exposed name -> help text. Counters' names carry the `_total` their samples are served as.
GAUGES: dict[str, str] = {
    "oracle_cursor_block": "Last block the event ingestor has processed.",
    "oracle_head_block": "The chain's head block at the last tick.",
    "oracle_head_lag_blocks": "Blocks between the chain's head and the ingestor's cursor.",
    "oracle_last_tick_timestamp_seconds": "Unix time of the main loop's last tick.",
    "oracle_pending_transactions": "Transactions sent and not yet mined or dropped.",
    "oracle_verifications_running": "Verifications running in the worker pool.",
}
COUNTERS: dict[str, str] = {
    "oracle_peer_garbage_total": "Malformed or inconsistent answers from peer oracles.",
    "oracle_reorgs_total": "Chain reorganisations the ingestor rolled back.",
    "oracle_rpc_errors_total": "Main-loop ticks that failed (RPC or other errors).",
    "oracle_settlements_total": "Jobs settled by a mined transaction of this oracle.",
    "oracle_signatures_total": "Verdicts this oracle signed.",
    "oracle_transactions_replaced_total": "Fee replacements of pending transactions.",
    "oracle_transactions_sent_total": "Transactions sent (settlements and upkeep).",
    "oracle_verifications_total": "Verifications finished.",
}


def _value(metric: Counter | Gauge, sample: str) -> float:
    for family in metric.collect():
        for s in family.samples:
            if s.name == sample:
                return float(s.value)
    raise KeyError(sample)


class _Values(Mapping[str, float]):
    """A read-only view: exposed name -> current value of an unlabelled gauge or counter
    (an int when whole, as block numbers and counts were set: `/healthz` serves them)."""

    def __init__(self, metrics: Mapping[str, Counter | Gauge]) -> None:
        self._metrics = metrics

    def __getitem__(self, name: str) -> float:
        value = _value(self._metrics[name], name)
        return int(value) if value.is_integer() else value

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._metrics))

    def __len__(self) -> int:
        return len(self._metrics)


class _Totals(_Values):
    """The counters' view; `totals[name] = n` is `Metrics.set_total(name, n)`."""

    def __init__(self, owner: Metrics) -> None:
        super().__init__(owner._counters)
        self._owner = owner

    def __setitem__(self, name: str, value: float) -> None:
        self._owner.set_total(name, value)


class Metrics:
    """The service's metrics; safe to update from the main loop and read from HTTP.

    `gauges` and `counters` read the current values by exposed name (`gauges.get(name)`);
    `registry` holds the prometheus_client objects that `render` exposes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        # Registered in the order the text has always listed them: jobs, gauges, counters
        # (each by name), the latency histogram.
        self._jobs = Gauge(
            "oracle_jobs", "Jobs in the oracle's store by state.", ["state"], registry=self.registry
        )
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        for name in sorted(GAUGES):
            self._gauge(name)
        for name in sorted(COUNTERS):
            self._counter(name)
        self.latency = Histogram(
            "oracle_verification_seconds",
            "Wall time of one verification.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.gauges: Mapping[str, float] = _Values(self._gauges)
        self.counters = _Totals(self)

    def _gauge(self, name: str) -> Gauge:
        if name not in self._gauges:
            self._gauges[name] = Gauge(
                name, GAUGES.get(name, name.replace("_", " ")), registry=self.registry
            )
        return self._gauges[name]

    def _counter(self, name: str) -> Counter:
        if name not in self._counters:
            if not name.endswith("_total"):
                raise ValueError(f"a counter's name ends in _total: {name}")
            # prometheus_client appends `_total` to a counter's samples: name it without
            self._counters[name] = Counter(
                name.removesuffix("_total"),
                COUNTERS.get(name, name.replace("_", " ")),
                registry=self.registry,
            )
        return self._counters[name]

    def inc(self, name: str, by: float = 1) -> None:
        with self._lock:
            self._counter(name).inc(by)

    def set_total(self, name: str, value: float) -> None:
        """Sets a counter kept elsewhere (a count the transaction sender holds): it rises
        by the difference; a lower value is a reset (as a restarted process would show)."""
        with self._lock:
            counter = self._counter(name)
            now = _value(counter, name)
            if value < now:
                counter.reset()
                now = 0
            if value > now:
                counter.inc(value - now)

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._gauge(name).set(value)

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self.latency.observe(seconds)

    def render(self, jobs_by_state: Mapping[str, int]) -> str:
        return self.exposition(jobs_by_state).decode("utf-8")

    def exposition(self, jobs_by_state: Mapping[str, int]) -> bytes:
        """The registry in the text format (`CONTENT_TYPE`), jobs by state as given."""
        with self._lock:
            self._jobs.clear()
            for state, n in sorted(jobs_by_state.items()):
                self._jobs.labels(state=state).set(n)
            return generate_latest(self.registry)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _key(name: str, labels: Mapping[str, str]) -> str:
    """A sample's name and labels as the exposition writes them (labels sorted, escaped)."""
    if not labels:
        return name
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def parse_text(text: str) -> dict[str, float]:
    """Sample name (with labels, as exposed) -> value, for tests and `oracle status`:
    `oracle_jobs{state="settled"}`, `oracle_verification_seconds_bucket{le="0.25"}`."""
    return {
        _key(s.name, s.labels): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

"""Structured logs: one JSON object per line on stderr.

    log = get_logger("ingest")
    event(log, "range_ingested", from_block=10, to_block=20, logs=3)

prints ``{"ts": "...", "level": "info", "logger": "oracle.ingest", "event":
"range_ingested", "from_block": 10, ...}``. Fields are plain values; bytes are written as
hex. Nothing here ever receives key material: the keystore module hands out an account
object whose repr hides the key, and no call site passes a key or password. What other
code's exceptions say is not trusted: in `error` and `exception` fields every URL is cut to
its origin (node providers put API keys in RPC URL paths), and a password in any URL's user
info is masked in every field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from neurotoken.redact import hide_password, redact_urls

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its `extra` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = _scrub(key, _plain(value))
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = _scrub("exception", self.formatException(record.exc_info))
        return json.dumps(out, sort_keys=False)


_FREE_TEXT = {"error", "exception"}


def _scrub(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return redact_urls(value) if key in _FREE_TEXT else hide_password(value)
    if isinstance(value, list):
        return [_scrub(key, v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(key, v) for k, v in value.items()}
    return value


def configure(level: str = "INFO") -> None:
    """Routes the `oracle` loggers to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("oracle")
    root.setLevel(level.upper())
    root.propagate = False
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"oracle.{name}")


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs the event `name` with `fields` as top-level JSON keys."""
    if log.isEnabledFor(level):
        safe = {k if k not in _RESERVED else f"{k}_": v for k, v in fields.items()}
        log.log(level, name, extra=safe)

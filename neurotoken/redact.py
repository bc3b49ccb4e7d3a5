"""Keeping secrets out of messages, logs and metrics.

Node providers put API keys in an RPC URL's path or query, databases take a password in the
URL's user info: neither may reach an error, a log line or a metric. What is shown of a URL
is its origin (scheme, host, port), or the URL with its password masked where the rest
holds no secret (a database URL).
"""

from __future__ import annotations

import re
import urllib.parse

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*):[^\s/@]*@")
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def url_origin(url: str, fallback: str = "the configured endpoint") -> str:
    """scheme://host:port of `url`: no credentials, path or query."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = f":{parsed.port}" if parsed.port else ""
    except ValueError:
        return fallback
    if not parsed.scheme or parsed.hostname is None:
        return fallback
    return f"{parsed.scheme}://{parsed.hostname}{port}"


def hide_password(url: str) -> str:
    """`url` with the password of its user info replaced by ***."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def redact_urls(text: str) -> str:
    """`text` with every URL in it cut to its origin (for messages built from other code's
    exceptions, which may quote a URL whole)."""
    return _ANY_URL.sub(lambda m: url_origin(m.group(0), fallback="<url>"), text)

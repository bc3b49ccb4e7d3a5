"""`data:` URIs: a client may put its spec in the URI itself (RFC 2397)."""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from neurotoken.errors import InputError


class DataUriError(InputError):
    """A `data:` URI that cannot be decoded; the message says why."""


def data_uri_bytes(uri: str) -> bytes:
    """The payload of a `data:` URI (base64 or percent-encoded); DataUriError otherwise."""
    if not uri.startswith("data:"):
        raise DataUriError("not a data: URI")
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise DataUriError("malformed data: URI")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return urllib.parse.unquote_to_bytes(payload)
    except (ValueError, binascii.Error):
        raise DataUriError("bad base64 in data: URI") from None

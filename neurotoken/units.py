"""NTK amounts (the unit, reading one a user typed, writing one for a user) and times as
users read them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from neurotoken.errors import InputError

NTK = 10**18
"""One NTK in its smallest unit (the token has 18 decimals)."""


def parse_ntk(text: str) -> int:
    """'1000', '1,000', '1_000.5', '0.5' or '1e3' NTK as wei. InputError (a ValueError) for
    anything else: not a number, negative, or finer than 18 decimals."""
    try:
        value = Decimal(str(text).strip().replace("_", "").replace(",", ""))
    except InvalidOperation:
        raise InputError(f"not an NTK amount: {text!r}; write it like 12.5") from None
    if not value.is_finite():
        raise InputError(f"not an NTK amount: {text!r}; write it like 12.5")
    wei = value * NTK
    if wei < 0 or wei != wei.to_integral_value():
        raise InputError(
            f"not an NTK amount (not negative, 18 decimals at most): {text!r}; write it like 12.5"
        )
    return int(wei)


def format_ntk(wei: int) -> str:
    """`wei` as NTK, exact, thousands grouped: '1,000.5 NTK', '0.000000000000000001 NTK'."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(int(wei)), NTK)
    frac_text = f"{frac:018d}".rstrip("0")
    return f"{sign}{whole:,}" + (f".{frac_text}" if frac_text else "") + " NTK"


def format_when(timestamp: int) -> str:
    """A unix timestamp as '2026-11-29 17:08:03 UTC'."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: int) -> str:
    """'3d 4h 5m' (or '42s' under a minute)."""
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    return " ".join([*parts, f"{minutes}m"])

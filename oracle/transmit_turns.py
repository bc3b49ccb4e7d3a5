"""Whose turn it is to transmit a settlement: the agreed order of the oracle set for a job,
and when a backup stands in for a late transmitter. Pure functions (no chain, no store)."""

from __future__ import annotations

from collections.abc import Callable


def transmit_order(members: list[str], job_id: int) -> list[str]:
    """The order in which oracles transmit for `job_id`: the oracle set sorted by address,
    rotated by the job id (so the first sender changes from job to job)."""
    ordered = sorted(members, key=lambda a: int(a, 16))
    if not ordered:
        return []
    start = job_id % len(ordered)
    return ordered[start:] + ordered[:start]


def transmit_rank(members: list[str], me: str, job_id: int) -> int:
    """This oracle's place in `transmit_order`: every member gets a distinct rank in
    0..n-1 (so exactly one sends at once); a non-member ranks n, after all of them."""
    order = transmit_order(members, job_id)
    return order.index(me) if me in order else len(order)


def turn_watch(
    order: list[str],
    me: str,
    elapsed: float,
    delay: float,
    age: Callable[[], float | None],
    margin: float,
) -> bool | list[str]:
    """Whether `me` may transmit for a job now: False (not yet), True (go), or the oracles
    to look at first (go unless one has a transaction waiting in the node's pool).

    `order` is `transmit_order`; `elapsed` the seconds since `me` could first send; `age()`
    the seconds since any oracle could first have sent (None: not known); `margin` slack
    for clocks and polls. Rank r waits r delays. In the delay after that, a backup looks at
    the oracles before it: one of them probably sent this very transaction. An oracle so
    late that a later rank's turn may have come (`age` past (r + 1) delays) looks at all
    the others, so that a slow designated transmitter does not send next to the backup
    that stood in for it."""
    rank = order.index(me) if me in order else len(order)
    if elapsed < rank * delay:
        return False
    if elapsed >= (rank + 1) * delay:
        return True
    since_any = age()
    if since_any is not None and since_any + margin >= (rank + 1) * delay:
        return [a for a in order if a != me]
    return order[:rank]

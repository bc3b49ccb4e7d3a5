"""`neurotoken.ports`: a port is never chosen twice in a row of choices (a Ray node once got
one port for two of its components, chosen one at a time, and refused to start in CI)."""

from __future__ import annotations

import socket

from neurotoken.ports import REMEMBERED, free_port, free_ports


def test_free_ports__many_at_once__all_distinct_and_bindable() -> None:
    ports = free_ports(2_000)  # asked of the kernel one at a time, ~70 repeat
    assert len(set(ports)) == len(ports) == 2_000
    for port in ports[:50]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_port__one_at_a_time__no_repeat_among_recent_choices() -> None:
    ports = [free_port() for _ in range(REMEMBERED)]
    assert len(set(ports)) == REMEMBERED

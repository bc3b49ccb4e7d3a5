"""`neurotoken.ports`: ports chosen together never repeat (a Ray node once got one port for
two of its components, asked one at a time, and refused to start in CI)."""

from __future__ import annotations

import socket

from neurotoken.ports import free_port, free_ports


def test_free_ports__many_at_once__all_distinct_and_bindable() -> None:
    ports = free_ports(2_000)  # one at a time, ~70 repeats are expected among 2,000
    assert len(set(ports)) == len(ports) == 2_000
    for port in ports[:50]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_port__one_bindable_port() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

"""Free TCP ports on 127.0.0.1 for the processes a test, a demo or a local cluster starts."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now: every socket stays bound until all are chosen, so
    the kernel cannot hand out the same port twice (asked one at a time, it can: a Ray node
    given one port for two of its components refuses to start)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """One port free now (for several at once, `free_ports`: these may repeat)."""
    return free_ports(1)[0]

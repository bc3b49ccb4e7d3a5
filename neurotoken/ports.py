"""Free TCP ports on 127.0.0.1 for the processes a test, a demo or a local cluster starts.

A port is only chosen here: the process it is for binds it later, so two choices made before
either is bound could be the same port (the kernel repeats ~130 times in 2,000 one-at-a-time
choices; a Ray node once got one port for two of its components and refused to start).
So ports chosen together are held bound until all are chosen, and this process never hands
out a port it handed out among its last `REMEMBERED` choices.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading

REMEMBERED = 4_096
"""How many recent choices are never repeated (of the ~28,000 ephemeral ports)."""

_recent: collections.deque[int] = collections.deque(maxlen=REMEMBERED)
_lock = threading.Lock()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports, free now and not among this process's recent choices."""
    with _lock, contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in _recent:  # held bound either way: not offered again in this call
                ports.append(port)
                _recent.append(port)
        return ports


def free_port() -> int:
    """One port, free now and not among this process's recent choices."""
    return free_ports(1)[0]

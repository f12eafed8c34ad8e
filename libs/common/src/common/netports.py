"""Picking a loopback port for a server about to start (tests, benches, the launcher's extra replicas)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Below the kernel's ephemeral range and above the ports of the servers and of `make dev`'s services.
_FLOOR = 20_000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, outside the ephemeral range.

    A port the kernel hands out for `bind(0)` comes from the range it also uses for the local end of outgoing
    connections: between this call and the server's own bind, a client connection (a pool's, to PostgreSQL)
    can take it and keep it, and the server then fails to bind for as long as that connection lives. Ports
    below the range are never given to outgoing connections.
    """
    low = _ephemeral_low()
    if low - _FLOOR >= 1_000:
        for _ in range(200):
            port = random.randrange(_FLOOR, low)  # noqa: S311 (a port, not a secret)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:  # no room below the range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

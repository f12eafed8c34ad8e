"""free_port: a port nothing listens on, never one the kernel may give an outgoing connection."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from common import netports
from common.netports import free_port


def test_ports_are_free_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(20_000 <= port < low for port in ports)
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # raises were it taken


def test_a_port_something_listens_on_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen()
        taken = listener.getsockname()[1]
        draws = iter([taken, taken, taken + 1])
        monkeypatch.setattr(netports.random, "randrange", lambda *_: next(draws))
        assert free_port() == taken + 1

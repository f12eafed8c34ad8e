"""Several replicas of one service behind one upstream: least-outstanding choice, failover on refused connects.

Why in the gateway rather than a proxy in front of the services: the gateway already holds a keep-alive
pool per origin, and the choice is per request (a connection-level balancer such as kube-proxy or
SO_REUSEPORT pins a long-lived keep-alive connection to one replica, so a busy replica keeps its share).
A replica whose connect is refused or times out received nothing, so any request, a POST included, may
go to another; it is then skipped for a moment rather than asked first again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import httpx

from gateway.http1 import RawTransport, UpstreamResponse

# How long a replica that refused a connection is passed over (asked last) before it is tried first again.
DOWN_SECONDS = 1.0


class BalancedTransport(RawTransport):
    """Send each request to the replica with the fewest requests awaiting an answer (ties in turn)."""

    def __init__(self, members: Sequence[RawTransport], *, down_seconds: float = DOWN_SECONDS) -> None:
        if not members:
            raise ValueError("a balanced upstream needs at least one replica")
        self.members = list(members)
        self.down_seconds = down_seconds
        self.outstanding = [0] * len(self.members)
        self._down_until = [0.0] * len(self.members)
        self._turn = itertools.count()

    def _order(self) -> list[int]:
        """Replicas to try, best first: up before down, then fewest outstanding, ties from a rotating start."""
        now = time.monotonic()
        start = next(self._turn) % len(self.members)
        indexes = [(start + i) % len(self.members) for i in range(len(self.members))]
        return sorted(indexes, key=lambda i: (self._down_until[i] > now, self.outstanding[i]))

    async def send(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """Send to the best replica; on a refused or timed-out connect (nothing sent), to the next one."""
        failure: httpx.TransportError | None = None
        for index in self._order():
            self.outstanding[index] += 1
            try:
                return await self.members[index].send(method, target, headers, body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._down_until[index] = time.monotonic() + self.down_seconds
                failure = exc
            finally:
                self.outstanding[index] -= 1
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        """Close every replica's pool."""
        for member in self.members:
            await member.aclose()

"""Admission: at most so many requests in flight to a service, and a fast 503 for the rest.

Past what the machine can serve, a request that waits its turn only makes every later one wait longer: the
queue grows until requests time out, and the services, the databases and the engines sharing the cores all
slow down with it (at 700 requests/s offered to a stack that serves ~600, the gateway's Redis checks timed
out behind its own backlog and the engines' lease rounds failed). Bounding the requests in flight bounds their
latency instead (Little's law: in flight = throughput × latency), and a refused request costs the gateway a
few hundred microseconds and the service nothing. The bound scales with the service's replicas.

Reads go first when something has to give: a read (GET, HEAD, OPTIONS) is refused at the cap, a write (a stop
command, a new bot, a TradingView signal) only at `WRITE_HEADROOM` times it, so a dashboard's polling cannot
crowd out the request that stops a bot.
"""

from __future__ import annotations

from collections.abc import Mapping

from common import metrics

# Seconds a refused client is told to wait before trying again.
RETRY_AFTER_SECONDS = 1
# A write is refused only when this many times the cap are in flight.
WRITE_HEADROOM = 2
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class Admission:
    """In-flight requests per service of this gateway replica, each under its cap."""

    def __init__(self, caps: Mapping[str, int]) -> None:
        self._caps = dict(caps)
        self._in_flight = dict.fromkeys(self._caps, 0)
        self._shed = {name: metrics.GATEWAY_SHED.labels(name) for name in self._caps}

    def enter(self, service: str, method: str) -> bool:
        """Count a request to `service` in; False (and nothing counted) when its cap is reached."""
        cap = self._caps.get(service)
        if cap is None:
            return True  # the gateway's own routes: served in this process, nothing queues elsewhere
        count = self._in_flight[service]
        if count >= (cap if method in READS else cap * WRITE_HEADROOM):
            self._shed[service].inc()
            return False
        self._in_flight[service] = count + 1
        return True

    def leave(self, service: str) -> None:
        """Count an admitted request to `service` out, however it ended."""
        if service in self._in_flight:
            self._in_flight[service] -= 1


def caps_for(replicas: Mapping[str, int], per_replica: int) -> dict[str, int]:
    """Each service's cap: `per_replica` for each of its replicas."""
    return {name: per_replica * max(1, count) for name, count in replicas.items()}

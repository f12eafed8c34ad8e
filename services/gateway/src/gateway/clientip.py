"""Who is the client: X-Forwarded-* are believed only when the TCP peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from gateway.settings import IPNetwork


class TrustedProxies:
    """Resolves the client address and scheme of a request from its peer and forwarded headers."""

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self._networks = tuple(networks)
        # Peers repeat (the load balancer, a few clients): remember verdicts, don't re-parse.
        self.is_trusted = lru_cache(maxsize=4096)(self._is_trusted)

    @property
    def enabled(self) -> bool:
        """True when at least one proxy is trusted."""
        return bool(self._networks)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str:
        """Right-most X-Forwarded-For hop not a trusted proxy (peer trusted), else the peer."""
        peer = peer or "unknown"
        if not forwarded_for or not self._networks or not self.is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop if _valid_ip(hop) else peer
        # Every hop is one of ours: the left-most is as close to the client as we can see.
        return hops[0] if hops else peer

    def is_https(self, scheme: str, peer: str | None, forwarded_proto: str | None) -> bool:
        """True when the client used TLS (directly, or per a trusted proxy's X-Forwarded-Proto)."""
        if scheme in ("https", "wss"):
            return True
        if forwarded_proto and peer and self._networks and self.is_trusted(peer):
            # A chain of proxies appends: the left-most value is what the client used.
            return forwarded_proto.split(",")[0].strip().lower() == "https"
        return False


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True

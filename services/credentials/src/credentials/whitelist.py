"""The ipWhitelist of a credential: parsing (IPs and CIDRs) and the check against this server's egress IP."""

from __future__ import annotations

import ipaddress
import re

from common.i18n import t

MAX_ENTRIES = 50
_SEPARATORS = re.compile(r"[\s,]+")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WhitelistError(ValueError):
    """The whitelist is not a list of IP addresses or CIDR ranges (the reason is safe to show)."""


def parse_whitelist(value: str) -> list[Network]:
    """The networks of a comma/space separated list of IPs and CIDRs; WhitelistError when malformed."""
    entries = [entry for entry in _SEPARATORS.split(value.strip()) if entry]
    if len(entries) > MAX_ENTRIES:
        raise WhitelistError(f"at most {MAX_ENTRIES} entries")
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise WhitelistError(f"not an IP address or CIDR range: {entry[:50]}") from None
    return networks


def normalise_whitelist(value: str | None) -> str | None:
    """The stored form: canonical entries joined by ", "; None for an absent or empty list."""
    if value is None:
        return None
    networks = parse_whitelist(value)
    if not networks:
        return None
    return ", ".join(
        str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net) for net in networks
    )


def whitelist_warnings(whitelist: str | None, egress_ip: str | None) -> list[str]:
    """Warnings (in the request's language) when the whitelist would not let this server's calls through."""
    if whitelist is None:
        return []
    if egress_ip is None:
        return [
            t(
                "서버의 외부 IP(EGRESS_IP)가 설정되지 않아 IP 화이트리스트를 확인할 수 없습니다",
                "This server's egress IP (EGRESS_IP) is unknown, so the IP whitelist could not be checked",
            )
        ]
    address = ipaddress.ip_address(egress_ip)
    if any(address in network for network in parse_whitelist(whitelist)):
        return []
    return [
        t(
            f"IP 화이트리스트에 이 서버의 외부 IP({egress_ip})가 포함되어 있지 않습니다. "
            "거래소에서 이 IP를 허용하지 않으면 주문이 거부됩니다",
            f"The IP whitelist does not include this server's egress IP ({egress_ip}); "
            "the exchange will refuse its requests unless that IP is allowed",
        )
    ]

"""Webhook targets checked against server-side request forgery: only public addresses, outside development.

A target's host is refused when it is, or resolves to, an address that is not globally routable: private
(RFC 1918, unique local), loopback, link-local (cloud metadata lives at 169.254.169.254), shared (CGNAT),
reserved, multicast or unspecified, or a known metadata address or name. Every address a name resolves to
must pass, and the request then goes to the very address checked (`Target.pinned`), so a name that resolves
elsewhere a moment later (DNS rebinding) gains nothing. Redirects are never followed (`senders`).
Development and test allow every address: the tests' receivers listen on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# Cloud metadata services (AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba, Oracle): refused whatever else.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "instance-data", "metadata.azure.com"})
# Names that never mean a public host.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


class TargetRefusedError(ValueError):
    """A webhook target the guard refuses (the message says why, for the client)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL, and the address to connect to (None: connect by name, as development does)."""

    url: SplitResult
    address: IPAddress | None

    @property
    def host(self) -> str:
        """The URL's host name (or literal address), without brackets."""
        return self.url.hostname or ""

    def pinned(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(URL to request, extra headers, httpx extensions) that reach the checked address under the original
        name: the Host header and, for https, the TLS server name and certificate check stay the name's."""
        if self.address is None:
            return self.url.geturl(), {}, {}
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        port = f":{self.url.port}" if self.url.port else ""
        netloc = literal + port
        url = self.url._replace(netloc=netloc).geturl()
        host_header = self.url.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": self.host} if self.url.scheme == "https" else {}
        return url, {"Host": host_header}, extensions


def parse_url(url: str) -> SplitResult:
    """An http(s) URL with a host, no credentials and a valid port; TargetRefusedError otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefusedError(f"at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefusedError("not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefusedError("must be an http or https URL")
    if not parts.hostname:
        raise TargetRefusedError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefusedError("must not carry credentials (sign with the channel's secret instead)")
    if port == 0:
        raise TargetRefusedError("port 0 is not a port")
    if any(ch.isspace() for ch in url):
        raise TargetRefusedError("must not contain whitespace")
    return parts


def refusal(address: IPAddress) -> str | None:
    """Why an address is no webhook target (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for test, why in (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_private, "a private address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_reserved, "a reserved address"),
    ):
        if test:
            return why
    if not address.is_global:
        return "not a public address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone is no part of the address
        address = _literal(text)
        if address is not None and address not in found:
            found.append(address)
    return found


async def check_target(url: str, *, allow_private: bool) -> Target:
    """The URL checked (and, outside development, resolved and pinned to a public address); TargetRefusedError."""
    parts = parse_url(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if allow_private:
        return Target(parts, None)
    literal = _literal(host)
    if literal is not None:
        why = refusal(literal)
        if why:
            raise TargetRefusedError(f"{host} is {why}")
        return Target(parts, literal)
    if host in METADATA_NAMES or host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        raise TargetRefusedError(f"{host} is not a public host name")
    addresses = await _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    if not addresses:
        raise TargetRefusedError(f"{host} does not resolve")
    for address in addresses:
        why = refusal(address)
        if why:
            raise TargetRefusedError(f"{host} resolves to {why}")
    return Target(parts, addresses[0])

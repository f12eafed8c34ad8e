"""Upstream forwarding: a pooled transport per service, bounded timeouts, 503 rather than hanging."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx
from starlette.types import Message, Receive, Scope, Send

from common.errors import ErrorCode
from common.web import error_response
from gateway.balance import BalancedTransport
from gateway.http1 import Http1Transport, RawTransport
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Hop-by-hop (RFC 9110 §7.6.1) plus what the gateway itself sets for the next hop.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"forwarded",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
    # The gateway's own span is the parent upstream (dispatch adds it while tracing is on).
    b"traceparent",
    b"tracestate",
}
# The gateway's own server stamps Date; a second one would be a duplicate header.
_NOT_RETURNED = _HOP_BY_HOP | {b"date"}
_URL_CACHE_SIZE = 4096
# Bodies up to this size (by Content-Length) are read within the deadline and sent in one message;
# larger or unsized ones stream, each read bounded by the upstream timeout.
BUFFER_LIMIT = 256 * 1024


class Reply(Protocol):
    """An upstream response whose head has arrived."""

    status: int
    headers: list[tuple[bytes, bytes]]

    @property
    def content_length(self) -> int | None:
        """The declared body size."""

    async def read(self) -> bytes:
        """The whole body."""

    def stream(self) -> AsyncIterator[bytes]:
        """The body's chunks."""

    async def aclose(self) -> None:
        """Release the connection."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """One service: its name, base URL, the transport requests use, and a client for checks."""

    name: str
    base_url: str
    transport: httpx.AsyncBaseTransport
    client: httpx.AsyncClient
    timeout: float  # for the answer's head (and a buffered body)
    urls: tuple[str, ...]  # every replica's base URL (base_url is the first)


class Upstreams:
    """Every configured service: a keep-alive pool per network service, or an in-process transport."""

    def __init__(
        self, settings: Settings, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None
    ) -> None:
        transports = dict(transports or {})
        self.timeout = settings.upstream_timeout_seconds
        # For transports given to us (httpx.ASGITransport ignores them; a network one would not).
        self.timeouts = {
            "connect": settings.upstream_connect_timeout_seconds,
            "read": self.timeout,
            "write": self.timeout,
            "pool": self.timeout,
        }
        self._by_name: dict[str, Upstream] = {}
        for name in sorted(set(settings.services) | set(transports)):
            # An in-process service needs no real URL; the host part only names it in logs.
            urls = settings.services.get(name, [f"http://{name}.internal"])
            timeout = settings.upstream_service_timeouts.get(name, settings.upstream_timeout_seconds)
            transport = transports.get(name) or _network_transport(settings, urls, timeout)
            base = urls[0]  # checks and docs fetches go through the transport, which picks the replica
            # For health and docs fetches; proxied requests go to the transport directly (no
            # cookie jar shared between users, no redirects followed, less per-request work).
            client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(
                    settings.health_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
                ),
                follow_redirects=False,
                trust_env=False,
            )
            self._by_name[name] = Upstream(name, base, transport, client, timeout, tuple(urls))
        self._owned = {name for name in self._by_name if name not in transports}

    @property
    def names(self) -> list[str]:
        """Service names, sorted."""
        return list(self._by_name)

    def get(self, name: str) -> Upstream:
        """The upstream called `name`."""
        return self._by_name[name]

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._by_name.values())

    async def aclose(self) -> None:
        """Close pools we created (transports handed to us belong to the caller)."""
        for name, upstream in self._by_name.items():
            if name in self._owned:
                await upstream.client.aclose()


def _network_transport(settings: Settings, urls: list[str], timeout: float) -> RawTransport:
    """A keep-alive pool to the service, or one per replica behind a balancer."""
    pools = [
        Http1Transport(
            url,
            max_connections=settings.upstream_max_connections,
            max_keepalive=settings.upstream_max_keepalive,
            keepalive_expiry=settings.upstream_keepalive_seconds,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=timeout,
        )
        for url in urls
    ]
    return pools[0] if len(pools) == 1 else BalancedTransport(pools)


class _HttpxReply:
    """The answer of a transport handed to create_app (e.g. httpx.ASGITransport) as a Reply."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(name.lower(), value) for name, value in response.headers.raw]

    @property
    def content_length(self) -> int | None:
        value = self._response.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.stream()])

    async def stream(self) -> AsyncIterator[bytes]:
        # The transport's stream is the raw body, never decompressed: Content-Encoding stays true.
        stream = self._response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        async for chunk in stream:
            yield chunk

    async def aclose(self) -> None:
        stream = self._response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            await stream.aclose()


class Forwarder:
    """Sends one ASGI request to an upstream and relays the answer unchanged (hop-by-hop aside)."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams
        self._urls: dict[tuple[str, bytes, bytes], httpx.URL] = {}

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        service: str,
        forwarded: list[tuple[bytes, bytes]],
        extra_response_headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Forward the request; 503 SERVICE_UNAVAILABLE when the upstream fails to answer."""
        upstream = self.upstreams.get(service)
        body = await read_body(receive)
        if body is None:
            return  # the client went away
        headers = [h for h in scope["headers"] if h[0] not in _NOT_FORWARDED]
        if any(h[0] == b"connection" for h in scope["headers"]):
            headers = _drop_connection_listed(headers, scope["headers"])
        headers.extend(forwarded)
        target: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string") or b""
        reply: Reply | None = None
        buffered: bytes | None = None
        try:
            # One deadline for the answer's head and a buffered body, whatever the transport.
            async with asyncio.timeout(upstream.timeout):
                reply = await self._send(upstream, scope["method"], target, query, headers, body)
                length = reply.content_length
                if length is not None and length <= BUFFER_LIMIT:
                    buffered = await reply.read()
        except Exception as exc:
            if reply is not None:
                await reply.aclose()
            _log_failure(service, exc)
            await error_response(ErrorCode.SERVICE_UNAVAILABLE, {"service": service})(scope, receive, send)
            return
        out = [h for h in reply.headers if h[0] not in _NOT_RETURNED]
        out.extend(extra_response_headers)
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": out})
            if buffered is not None:
                await send({"type": "http.response.body", "body": buffered})
                return
            try:
                async for chunk in reply.stream():
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except Exception as exc:
                # Too late for a 503: let the server drop the connection rather than end the body
                # as if it were complete.
                _log_failure(service, exc)
                raise
            await send({"type": "http.response.body", "body": b""})
        finally:
            await reply.aclose()

    async def _send(
        self,
        upstream: Upstream,
        method: str,
        target: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Reply:
        transport = upstream.transport
        if isinstance(transport, RawTransport):
            full = target + b"?" + query if query else target
            return await transport.send(method.encode(), full, headers, body)
        request = httpx.Request(
            method,
            self._url(upstream, target, query),
            headers=headers,
            content=body,
            extensions={"timeout": self.upstreams.timeouts},
        )
        return _HttpxReply(await transport.handle_async_request(request))

    def _url(self, upstream: Upstream, target: bytes, query: bytes) -> httpx.URL:
        # URL parsing is a good share of httpx's per-request cost, and paths repeat.
        key = (upstream.name, target, query)
        url = self._urls.get(key)
        if url is None:
            text = upstream.base_url + target.decode("latin-1")
            url = httpx.URL(text + "?" + query.decode("latin-1") if query else text)
            if len(self._urls) >= _URL_CACHE_SIZE:
                del self._urls[next(iter(self._urls))]
            self._urls[key] = url
        return url


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body (capped by the kit's body-limit middleware); None on disconnect."""
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _drop_connection_listed(
    headers: list[tuple[bytes, bytes]], original: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    # Headers named in Connection are hop-by-hop for this one message.
    listed = {
        token.strip().lower()
        for name, value in original
        if name == b"connection"
        for token in value.split(b",")
    }
    return [h for h in headers if h[0] not in listed]


def _log_failure(service: str, exc: BaseException) -> None:
    if isinstance(exc, httpx.TransportError | TimeoutError | OSError):
        log.warning("upstream %s unavailable: %s", service, type(exc).__name__)
    else:
        log.error("upstream %s failed", service, exc_info=exc)

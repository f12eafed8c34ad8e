"""A lean pooled HTTP/1.1 client transport for the proxy hot path, pluggable into httpx.

Why not httpx's default transport: httpcore (anyio + h11, pure Python) costs about 300 µs of CPU per
proxied request on this class of machine, against about 40 µs for a protocol on the event loop with
the httptools (llhttp) parser that uvicorn already uses. The gateway is on every request's path, so
that difference is most of its overhead. `Http1Transport` is still an `httpx.AsyncBaseTransport`: an
`httpx.AsyncClient` uses it as is (health checks, docs), and the proxy calls `send()` without building
httpx models. Keep-alive pool, bounded size, idle expiry, connect timeout, one retry of an idempotent
request whose reused connection turned out to be closed by the server.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools
import httpx

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
# Stop reading from a streaming upstream while this much is waiting for a slow client.
_HIGH_WATER = 1024 * 1024


class ConnectionClosedError(httpx.RemoteProtocolError):
    """The server closed the connection before its response was complete."""


class UpstreamResponse:
    """Status and headers of an upstream answer; the body is read (or streamed) from its connection."""

    def __init__(self, conn: _Connection, read_timeout: float) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self.status = conn.status
        self.headers = conn.headers

    @property
    def content_length(self) -> int | None:
        """The Content-Length the upstream declared, if any."""
        return _content_length(self.headers)

    def complete_body(self) -> bytes | None:
        """The whole body when it has already arrived (the usual small JSON answer), else None."""
        conn = self._conn
        if conn.complete and not conn.failed:
            body = b"".join(conn.chunks)
            conn.chunks.clear()
            conn.release()
            return body
        return None

    async def stream(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (chunked encoding already removed)."""
        conn = self._conn
        while True:
            while conn.chunks:
                chunk = conn.chunks.popleft()
                conn.buffered -= len(chunk)
                if conn.paused and conn.buffered < _HIGH_WATER // 2:
                    conn.resume()
                yield chunk
            if conn.complete:
                conn.release()
                return
            if conn.failed:
                raise ConnectionClosedError("upstream closed the connection mid-body")
            conn.wakeup = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._read_timeout):
                    await conn.wakeup
            except TimeoutError as exc:
                raise httpx.ReadTimeout("upstream stopped sending its body") from exc

    async def read(self) -> bytes:
        """The whole body."""
        body = self.complete_body()
        if body is not None:
            return body
        return b"".join([chunk async for chunk in self.stream()])

    async def aclose(self) -> None:
        """Give the connection back (or drop it when the body was not read to its end)."""
        self._conn.release()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, parses its response with llhttp."""

    def __init__(self, pool: Http1Transport) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.in_use = False
        self.idle_since = 0.0
        self._reset(b"GET")

    def _reset(self, method: bytes) -> None:
        self.method = method
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.received = False
        self.complete = False
        self.failed = False
        self.keep_alive = False
        self.head_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.wakeup: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the parser."""
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid response from upstream: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        """The server (or we) closed the connection."""
        self.closed = True
        if self.in_use and not self.complete:
            if self.head_done.done() and not _has_framing(self.headers):
                self.on_message_complete()  # a body delimited by the connection's end
            else:
                self._fail(ConnectionClosedError("upstream closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        """One response header."""
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """Status line and headers are in."""
        self.status = self.parser.get_status_code()
        if not self.head_done.done():
            self.head_done.set_result(None)
        if self.method == b"HEAD":
            # llhttp cannot be told that a HEAD answer has no body: finish here, never reuse.
            self.keep_alive = False
            self.complete = True
            self.abort()

    def on_body(self, body: bytes) -> None:
        """A piece of the body."""
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        """The response is complete."""
        if self.complete:
            return
        self.complete = True
        self.keep_alive = not self.closed and self.parser.should_keep_alive()
        self._wake()

    def _wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.failed = True
        if not self.head_done.done():
            self.head_done.set_exception(exc)
        self._wake()

    def resume(self) -> None:
        """Read again after the consumer caught up."""
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def send(self, method: bytes, data: bytes) -> None:
        """Start one exchange."""
        self._reset(method)
        self.in_use = True
        assert self.transport is not None
        self.transport.write(data)

    def release(self) -> None:
        """Back to the pool when the exchange ended cleanly, else closed."""
        if not self.in_use:
            return
        self.in_use = False
        if self.complete and self.keep_alive and not self.closed and not self.chunks:
            self.pool._idle_push(self)
        else:
            self.abort()
            self.pool._dropped()

    def abort(self) -> None:
        """Drop the connection now."""
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _has_framing(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)


class RawTransport(httpx.AsyncBaseTransport):
    """A transport the proxy calls through `send()`, without httpx models; httpx clients still use it."""

    async def send(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """One request (target = path + query, without the base URL's path); the response head."""
        raise NotImplementedError

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The httpx interface, for an httpx.AsyncClient built on this transport."""
        body = await request.aread()
        target = request.url.raw_path
        headers = [
            (name.lower(), value)
            for name, value in request.headers.raw
            if name.lower() not in (b"host", b"content-length", b"transfer-encoding")
        ]
        response = await self.send(request.method.encode(), target, headers, body)
        return httpx.Response(response.status, headers=response.headers, content=await response.read())


class Http1Transport(RawTransport):
    """A bounded keep-alive pool of HTTP/1.1 connections to one upstream origin."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        max_keepalive: int = 50,
        keepalive_expiry: float = 4.0,
        connect_timeout: float = 1.0,
        read_timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.host_header = parts.netloc.encode()
        self.prefix = parts.path.rstrip("/").encode()
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def send(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """One request (target = path + query, without the base URL's path); the response head."""
        head = [method, b" ", self.prefix, target, b" HTTP/1.1\r\nhost: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        if body or method in _BODY_METHODS:
            head += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        head.append(b"\r\n")
        data = b"".join(head) + body
        retry = method in _IDEMPOTENT
        while True:
            conn, reused = await self._acquire()
            try:
                conn.send(method, data)
                await conn.head_done
            except ConnectionClosedError:
                conn.release()
                # A kept-alive socket the server had closed just before we wrote: nothing was
                # processed, so an idempotent request may go again on a fresh connection.
                if reused and retry and not conn.received:
                    retry = False
                    continue
                raise
            except BaseException:
                conn.abort()
                conn.release()
                raise
            return UpstreamResponse(conn, self.read_timeout)

    async def _acquire(self) -> tuple[_Connection, bool]:
        """A warm idle connection, a new one while under the bound, else wait for either."""
        while True:
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and now - conn.idle_since < self.keepalive_expiry:
                    return conn, True
                conn.abort()
                self._open -= 1
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._dropped()
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were handed a turn we cannot use: pass it on
                else:
                    self._waiters.remove(waiter)
                raise

    async def _connect(self) -> _Connection:
        if self._closed:
            raise httpx.ConnectError("transport closed")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {self.host}:{self.port}: {exc}") from exc
        return protocol

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _idle_push(self, conn: _Connection) -> None:
        """A connection whose exchange ended cleanly: keep it warm (it still counts as open)."""
        if self._closed or len(self._idle) >= self.max_keepalive:
            conn.abort()
            self._dropped()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake_one()

    def _dropped(self) -> None:
        """A connection is gone: its place is free."""
        self._open -= 1
        self._wake_one()

    async def aclose(self) -> None:
        """Close idle connections; in-flight ones close when their exchange ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().abort()
            self._open -= 1

"""Injected failures: the next N matching exchange requests get 500, 429 or no answer."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from exchange_sim.markets import VENUES, Venue
from exchange_sim.requests import RequestCounter, request_api_key

HttpFaultKind = Literal["http_500", "http_429", "timeout"]
HTTP_FAULT_KINDS: tuple[HttpFaultKind, ...] = ("http_500", "http_429", "timeout")
_VENUE_PREFIXES = {f"/{venue}": venue for venue in VENUES}


@dataclass
class Fault:
    """A pending failure for the next `remaining` matching requests."""

    id: int
    kind: HttpFaultKind
    remaining: int
    exchange: Venue | None = None
    path_prefix: str | None = None

    def matches(self, venue: Venue, path: str) -> bool:
        """True when a request to this venue and venue-relative path should fail."""
        if self.exchange is not None and self.exchange != venue:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def as_json(self) -> dict[str, object]:
        """The control API's view of the fault."""
        return {
            "id": self.id,
            "kind": self.kind,
            "remaining": self.remaining,
            "exchange": self.exchange,
            "path_prefix": self.path_prefix,
        }


class FaultInjector:
    """Pending faults, consumed first-in first-out by matching requests."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(
        self,
        kind: HttpFaultKind,
        count: int,
        exchange: Venue | None = None,
        path_prefix: str | None = None,
    ) -> Fault:
        """Make the next `count` matching requests fail."""
        fault = Fault(next(self._ids), kind, count, exchange, path_prefix)
        self._faults.append(fault)
        return fault

    def take(self, venue: Venue, path: str) -> Fault | None:
        """The fault this request triggers (counting it), if any."""
        for fault in self._faults:
            if fault.matches(venue, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[Fault]:
        """Faults still waiting for requests."""
        return list(self._faults)

    def clear(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()


def split_venue_path(path: str) -> tuple[Venue, str] | None:
    """("binance", "/api/v3/order") for "/binance/api/v3/order"; None outside the venues."""
    for prefix, venue in _VENUE_PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return venue, path[len(prefix) :] or "/"
    return None


class FaultMiddleware:
    """ASGI middleware counting exchange HTTP requests and answering those hit by a pending fault."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        timeout_seconds: float,
        counter: RequestCounter | None = None,
    ) -> None:
        self.app = app
        self.injector = injector
        self.timeout_seconds = timeout_seconds
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, unless a fault claims it."""
        if scope["type"] == "http":
            split = split_venue_path(scope["path"])
            if split is not None and self.counter is not None:
                api_key = request_api_key(split[0], scope.get("headers") or [])
                self.counter.add(split[0], scope["method"], split[1], api_key)
            fault = self.injector.take(*split) if split is not None else None
            if fault is not None and split is not None:
                await self._fail(fault.kind, split[0], receive, send)
                return
        await self.app(scope, receive, send)

    async def _fail(self, kind: HttpFaultKind, venue: Venue, receive: Receive, send: Send) -> None:
        if kind == "timeout":
            # Hold the request until the client gives up (disconnects) or our own limit passes.
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    while (await receive())["type"] != "http.disconnect":
                        pass
                return
            except TimeoutError:
                await _plain(
                    send,
                    504,
                    b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
                    "text/html",
                )
                return
        if kind == "http_429":
            if venue == "binance":
                body = (
                    b'{"code":-1003,"msg":"Too many requests; current limit of IP(127.0.0.1) '
                    b"request weight is 6000 per 1 MINUTE. Please use WebSocket Streams for "
                    b'live updates to avoid polling the API."}'
                )
                await _plain(send, 429, body, "application/json;charset=UTF-8", retry_after=True)
            else:
                await _plain(
                    send,
                    429,
                    b"Too many API requests.",
                    "text/plain;charset=UTF-8",
                    retry_after=True,
                )
            return
        # A 500 from the edge, not the API: no error body, so ccxt raises ExchangeNotAvailable.
        await _plain(send, 500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")


async def _plain(send: Send, status: int, body: bytes, content_type: str, retry_after: bool = False) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

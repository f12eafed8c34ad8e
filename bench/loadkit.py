"""What a load bench needs on the client side: a cheap keep-alive HTTP/1.1 client, an open-loop schedule
and the latency figures made of its samples.

The client is an asyncio protocol over the httptools (llhttp) parser uvicorn uses, not httpx: httpx costs
several hundred µs of CPU a request, which on this 2-core machine would be taken from the very services under
measure; this costs a few tens of µs. Used by bench/api_load.py.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httptools
import orjson


class _Response(asyncio.Protocol):
    """One connection: writes a request, parses the response (Content-Length or chunked) with httptools."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._fail(ConnectionError("connection closed by the server"))

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, b"".join(self.body)))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


class Client:
    """GETs to one host as one browser tab sends them: keep-alive connections, at most `connections` at once
    (a browser's 6 per host), fixed headers on every request (Authorization, X-Forwarded-For)."""

    def __init__(self, port: int, headers: dict[str, str], connections: int = 6) -> None:
        self.port = port
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"host": f"127.0.0.1:{port}", **headers}.items())
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Response] = []
        self.opened = 0

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of GET `path`; raises ConnectionError/OSError when the connection fails."""
        async with self._slots:
            while self._idle and not self._idle[-1].open:  # closed by the server while idle
                self._idle.pop()
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                answer = await conn.request(f"GET {path} HTTP/1.1\r\n{self._head}\r\n".encode())
            except BaseException:
                conn.close()  # a timeout or failure leaves the connection in an unknown state
                raise
            if conn.open:
                self._idle.append(conn)
            return answer

    async def _connect(self) -> _Response:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Response, "127.0.0.1", self.port)
        self.opened += 1
        return protocol

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def schedule(start: float, end: float, rate: float, rng: random.Random, jitter: float = 0.2) -> list[float]:
    """Send times of one user: every 1/rate s from a random phase, each moved by up to ±`jitter` of the
    interval (not accumulated, so the rate holds exactly), in [start, end)."""
    interval = 1.0 / rate
    first = start + rng.uniform(0, interval)
    times = []
    for k in range(math.ceil((end - start) * rate) + 1):
        t = first + k * interval + rng.uniform(-jitter, jitter) * interval
        if start <= t < end:
            times.append(t)
    return times


@dataclass
class Recorder:
    """Latencies (s) by route and errors by route and code, of the requests scheduled inside the window."""

    window_start: float
    window_end: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    # How late the client sent (send time − scheduled time): large values mean the client was the bottleneck.
    lateness: list[float] = field(default_factory=list)
    # (scheduled, latency, route) of every request in the window, when a timeline is asked for.
    timeline: list[tuple[float, float, str]] | None = None
    # Latencies of the requests answered without an error: past capacity, what the served users saw.
    answered: list[float] = field(default_factory=list)

    def counts(self, scheduled: float) -> bool:
        """Whether a request scheduled then is inside the measured window."""
        return self.window_start <= scheduled < self.window_end

    def add(self, route: str, scheduled: float, sent: float, done: float, outcome: int | str, body: bytes) -> None:  # fmt: skip
        """One request: its latency from the scheduled time; a status ≥ 400 or a failure is an error too."""
        if not self.counts(scheduled):
            return
        self.latencies.setdefault(route, []).append(done - scheduled)
        if self.timeline is not None:
            self.timeline.append((scheduled, done - scheduled, route))
        self.lateness.append(sent - scheduled)
        if isinstance(outcome, str):
            self.errors[(route, outcome)] += 1
        elif outcome >= 400:
            self.errors[(route, f"{outcome} {error_code(body)}")] += 1
        else:
            self.answered.append(done - scheduled)

    def figures(self) -> dict[str, dict[str, float]]:
        """Per route and `overall`: samples, requests/s over the window, p50/p90/p99/max (ms), errors."""
        seconds = self.window_end - self.window_start
        rows: dict[str, dict[str, float]] = {}
        everything: list[float] = []
        for route in sorted(self.latencies):
            samples = self.latencies[route]
            everything.extend(samples)
            errors = sum(n for (r, _), n in self.errors.items() if r == route)
            rows[route] = summary(samples, seconds, errors)
        rows["overall"] = summary(everything, seconds, sum(self.errors.values()))
        return rows

    def answered_figures(self) -> dict[str, float]:
        """Samples, requests/s and p50/p90/p99/max (ms) of the requests answered without an error."""
        return summary(self.answered, self.window_end - self.window_start, 0)


def error_code(body: bytes) -> str:
    """The error envelope's code, or `?` when the body is not one."""
    try:
        return str(orjson.loads(body)["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "?"


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted, non-empty samples (q in 0..1)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(samples: list[float], seconds: float, errors: int) -> dict[str, float]:
    """Samples, requests/s and p50/p90/p99/max in ms of one set of latencies (0 ms without samples, the
    sample count says so: a JSON document has no NaN)."""
    ordered = sorted(samples) or [0.0]
    return {
        "samples": len(samples),
        "rps": round(len(samples) / seconds, 1),
        **{f"p{round(q * 100)}_ms": round(percentile(ordered, q) * 1000, 1) for q in (0.5, 0.9, 0.99)},
        "max_ms": round(ordered[-1] * 1000, 1),
        "errors": errors,
    }

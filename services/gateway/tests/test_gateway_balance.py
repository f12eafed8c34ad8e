"""Replicas behind one upstream (`gateway.balance`), against raw servers: spread, least outstanding, failover."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import pytest

from gateway.balance import BalancedTransport
from gateway.http1 import Http1Transport
from gateway.testing import raw_server, wait_until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _named(name: bytes, served: Counter[bytes], hold: asyncio.Event | None = None) -> Handler:
    """A handler answering every request with its server's name (after `hold` is set, if given)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                served[name] += 1
                if hold is not None:
                    await hold.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(name), name))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return handler


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _answer(transport: BalancedTransport, method: bytes = b"GET") -> bytes:
    reply = await transport.send(method, b"/x", [], b"{}" if method == b"POST" else b"")
    return await reply.read()


async def test_requests_are_spread_over_the_replicas_in_turn() -> None:
    served: Counter[bytes] = Counter()
    async with raw_server(_named(b"a", served)) as a, raw_server(_named(b"b", served)) as b:
        transport = BalancedTransport([Http1Transport(f"http://127.0.0.1:{p}") for p in (a, b)])
        try:
            answers = Counter([await _answer(transport) for _ in range(20)])
        finally:
            await transport.aclose()
    assert answers == Counter({b"a": 10, b"b": 10}) == served


async def test_a_replica_with_a_request_awaiting_its_answer_is_passed_over() -> None:
    served: Counter[bytes] = Counter()
    release = asyncio.Event()
    async with (
        raw_server(_named(b"slow", served, release)) as slow,
        raw_server(_named(b"fast", served)) as fast,
    ):
        transport = BalancedTransport([Http1Transport(f"http://127.0.0.1:{p}") for p in (slow, fast)])
        try:
            held = asyncio.create_task(_answer(transport))  # the first turn is the first replica's
            await wait_until(lambda: served[b"slow"] == 1)
            # The slow replica has one request outstanding, the fast one none after each answer: all go there.
            assert [await _answer(transport) for _ in range(10)] == [b"fast"] * 10
            assert served[b"slow"] == 1
            release.set()
            assert await held == b"slow"
        finally:
            await transport.aclose()


@pytest.mark.parametrize("method", [b"GET", b"POST"])
async def test_a_replica_that_refuses_connections_is_skipped_for_any_method(method: bytes) -> None:
    served: Counter[bytes] = Counter()
    async with raw_server(_named(b"up", served)) as up:
        down = Http1Transport(f"http://127.0.0.1:{_closed_port()}")
        transport = BalancedTransport([down, Http1Transport(f"http://127.0.0.1:{up}")], down_seconds=60)
        try:
            # Nothing reached the dead one, so even a POST goes on to the live one; no error is seen.
            assert [await _answer(transport, method) for _ in range(6)] == [b"up"] * 6
        finally:
            await transport.aclose()
    assert served[b"up"] == 6


async def test_every_replica_refusing_is_a_connect_error() -> None:
    transport = BalancedTransport([Http1Transport(f"http://127.0.0.1:{_closed_port()}") for _ in range(2)])
    try:
        with pytest.raises(httpx.ConnectError):
            await _answer(transport)
    finally:
        await transport.aclose()


def test_a_balancer_needs_a_replica() -> None:
    with pytest.raises(ValueError, match="at least one replica"):
        BalancedTransport([])

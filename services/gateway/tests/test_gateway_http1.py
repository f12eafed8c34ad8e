"""The lean HTTP/1.1 transport against raw servers: framing, keep-alive, closed sockets, limits."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.http1 import Http1Transport
from gateway.testing import raw_server, wait_until


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


async def test_chunked_answer_is_reassembled_and_connection_reused() -> None:
    connections: list[int] = []
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                requests.append(await _read_request(reader))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}/base")
        try:
            bodies = []
            for i in range(3):
                reply = await transport.send(b"POST", f"/p/{i}?q=1".encode(), [(b"x-b", b"2")], b"{}")
                assert reply.status == 200
                assert (b"x-a", b"1") in reply.headers
                bodies.append(b"".join([c async for c in reply.stream()]))
        finally:
            await transport.aclose()
    assert bodies == [b"hello world"] * 3
    assert len(connections) == 1
    assert requests[1].startswith(b"POST /base/p/1?q=1 HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in requests[1]
    assert b"\r\ncontent-length: 2\r\n" in requests[1]
    assert requests[1].endswith(b"\r\n\r\n{}")


async def test_body_delimited_by_close_and_no_reuse() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}")
        try:
            first = await transport.send(b"GET", b"/", [], b"")
            assert b"".join([c async for c in first.stream()]) == b"until the end"
            second = await transport.send(b"GET", b"/", [], b"")
            assert b"".join([c async for c in second.stream()]) == b"until the end"
        finally:
            await transport.aclose()


async def test_idempotent_request_is_retried_once_on_a_stale_connection() -> None:
    served: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        # Keep-alive was promised, yet the server drops the socket right after answering.
        writer.close()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}")
        try:
            first = await transport.send(b"GET", b"/", [], b"")
            assert first.complete_body() == b"ok"
            # The pooled socket is dead; GET goes again on a fresh one.
            second = await transport.send(b"GET", b"/", [], b"")
            assert await _read_all(second) == b"ok"
        finally:
            await transport.aclose()
    assert len(served) == 2


async def test_stale_connection_is_not_retried_for_post() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        # Wait for the next request to arrive, then drop it unanswered.
        await reader.read(1)
        writer.transport.abort()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}")
        try:
            assert (await transport.send(b"POST", b"/", [], b"")).complete_body() is not None
            with pytest.raises(httpx.RemoteProtocolError):
                await transport.send(b"POST", b"/", [], b"")
        finally:
            await transport.aclose()


async def test_garbage_answer_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}")
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                await transport.send(b"GET", b"/", [], b"")
        finally:
            await transport.aclose()


async def test_pool_is_bounded() -> None:
    release = asyncio.Event()
    open_connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_connections.append(1)
        await _read_request(reader)
        await release.wait()
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}", max_connections=2)

        async def call() -> int:
            reply = await transport.send(b"GET", b"/", [], b"")
            await reply.aclose()
            return reply.status

        try:
            tasks = [asyncio.create_task(call()) for _ in range(3)]
            await wait_until(lambda: len(open_connections) == 2)
            # The third request waits for a free slot instead of opening a third socket.
            assert not any(t.done() for t in tasks)
            assert len(open_connections) == 2
            release.set()
            assert await asyncio.gather(*tasks) == [204, 204, 204]
        finally:
            await transport.aclose()
    assert len(open_connections) == 3


async def test_httpx_client_can_use_the_transport() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        body = request.split(b"\r\n", 1)[0]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async with raw_server(handler) as port:
        transport = Http1Transport(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"http://127.0.0.1:{port}/x?y=1")
    assert response.text == "GET /x?y=1 HTTP/1.1"


async def _read_all(reply: object) -> bytes:
    assert hasattr(reply, "stream")
    return b"".join([chunk async for chunk in reply.stream()])

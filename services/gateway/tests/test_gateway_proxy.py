"""Forwarding: what reaches the service, what comes back, and 503 instead of hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.trace import SpanKind

from common.testing.infra import free_port
from gateway.main import create_app
from gateway.testing import (
    Tokens,
    Upstream,
    bearer,
    gateway,
    make_settings,
    raw_server,
    serve,
)


async def test_request_reaches_the_service_as_sent(auth_up: Upstream, tokens: Tokens) -> None:
    token = tokens.access()
    headers = {
        **bearer(token),
        "Content-Type": "application/json",
        "Accept-Language": "en",
        "X-Custom": "kept",
        "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "hop-by-hop because Connection names it",
        "Keep-Alive": "timeout=5",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.example",
        "Host": "api.example.com",
    }
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.put(
            "/api/auth/profile%20x/1?b=2&a=%20&a=3", content=b'{"name":"x"}', headers=headers
        )
    assert response.status_code == 200
    seen = auth_up.calls[0]
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == "/api/auth/profile%20x/1"
    assert seen["query"] == "b=2&a=%20&a=3"
    assert seen["body"] == '{"name":"x"}'
    got = seen["headers"]
    assert got["authorization"] == f"Bearer {token}"
    assert got["content-type"] == "application/json"
    assert got["accept-language"] == "en"
    assert got["x-custom"] == "kept"
    assert got["content-length"] == "12"
    for hop in ("connection", "x-drop-me", "keep-alive"):
        assert hop not in got
    # The client's own forwarding claims are replaced: it is not a trusted proxy.
    assert got["x-forwarded-for"] == "203.0.113.7"
    assert got["x-forwarded-host"] == "api.example.com"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-real-ip"] == "203.0.113.7"
    assert [name for name, _ in seen["header_list"]].count("x-forwarded-for") == 1


async def test_trusted_proxy_chain_is_extended(auth_up: Upstream, tokens: Tokens) -> None:
    settings = make_settings(trusted_proxies=["10.0.0.0/8"])
    headers = {
        **bearer(tokens.access()),
        "X-Forwarded-For": "198.51.100.1",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "api.example.com",
    }
    async with gateway(settings, {"auth": auth_up.transport()}, client_addr=("10.0.0.2", 1)) as c:
        await c.get("/api/auth/me", headers=headers)
    got = auth_up.calls[0]["headers"]
    assert got["x-forwarded-for"] == "198.51.100.1, 10.0.0.2"
    assert got["x-forwarded-proto"] == "https"
    assert got["x-forwarded-host"] == "api.example.com"
    assert got["x-real-ip"] == "198.51.100.1"


async def test_upstream_answer_comes_back_unchanged(auth_up: Upstream, tokens: Tokens) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.get("/api/auth/_status/418", headers=bearer(tokens.access()))
    assert response.status_code == 418
    assert response.json() == {"upstream": "auth", "code": 418}
    assert response.headers["x-upstream"] == "auth"
    assert response.headers["set-cookie"] == "s=1; HttpOnly"
    assert response.headers["x-ratelimit-limit"] == "100"


async def test_large_bodies_stream_through(auth_up: Upstream, tokens: Tokens) -> None:
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        response = await client.get("/api/auth/_stream/300000", headers=bearer(tokens.access()))
    assert response.status_code == 200
    assert response.content == b"x" * 300000


async def test_body_over_the_limit_is_413_before_the_service(auth_up: Upstream, tokens: Tokens) -> None:
    settings = make_settings(max_body_bytes=2048)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 1000

    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        declared = await client.post("/api/auth/login", content=b"x" * 3000)
        undeclared = await client.post("/api/auth/login", content=chunked())
        fits = await client.post("/api/auth/login", content=b"x" * 2000)
    for response in (declared, undeclared):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert fits.status_code == 200
    assert len(auth_up.calls) == 1


async def test_in_process_upstream_that_hangs_is_cut_off(auth_up: Upstream, tokens: Tokens) -> None:
    settings = make_settings(upstream_timeout_seconds=0.3)
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        started = time.monotonic()
        response = await client.get("/api/auth/_slow", headers=bearer(tokens.access()))
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"]["details"] == {"service": "auth"}
    assert elapsed < 2


async def test_network_upstream_round_trip(auth_up: Upstream, tokens: Tokens) -> None:
    async with serve(auth_up.app) as port:
        settings = make_settings(services={"auth": f"http://127.0.0.1:{port}"})
        async with gateway(settings) as client:
            answers = [
                await client.post(f"/api/auth/echo/{i}?q={i}", json={"i": i}, headers=bearer(tokens.access()))
                for i in range(3)
            ]
            streamed = await client.get("/api/auth/_stream/400000", headers=bearer(tokens.access()))
            head = await client.head("/api/auth/me", headers=bearer(tokens.access()))
            after_head = await client.get("/api/auth/me", headers=bearer(tokens.access()))
    assert [r.json()["path"] for r in answers] == [f"/api/auth/echo/{i}" for i in range(3)]
    assert [r.json()["body"] for r in answers] == [f'{{"i":{i}}}' for i in range(3)]
    assert answers[0].json()["headers"]["host"] == f"127.0.0.1:{port}"
    assert streamed.content == b"x" * 400000
    assert head.status_code == 405  # the stand-in has no HEAD route, its 405 comes back
    assert after_head.status_code == 200


async def test_dead_upstream_is_503_at_once(tokens: Tokens) -> None:
    settings = make_settings(services={"auth": f"http://127.0.0.1:{free_port()}"})
    async with gateway(settings) as client:
        started = time.monotonic()
        response = await client.get("/api/auth/me", headers=bearer(tokens.access()))
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "SERVICE_UNAVAILABLE",
        "message": "서비스를 일시적으로 사용할 수 없습니다",
        "details": {"service": "auth"},
    }
    assert elapsed < 1


async def test_network_upstream_that_never_answers_is_cut_off(tokens: Tokens) -> None:
    accepted = asyncio.Event()

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # hold the connection, never answer
        writer.close()

    async with raw_server(black_hole) as port:
        settings = make_settings(services={"auth": f"http://127.0.0.1:{port}"}, upstream_timeout_seconds=0.3)
        async with gateway(settings) as client:
            started = time.monotonic()
            response = await client.get("/api/auth/me", headers=bearer(tokens.access()))
            elapsed = time.monotonic() - started
    assert accepted.is_set()
    assert response.status_code == 503
    assert response.json()["error"]["details"] == {"service": "auth"}
    assert 0.25 < elapsed < 2


async def test_unresolvable_upstream_is_503(tokens: Tokens) -> None:
    settings = make_settings(services={"auth": "http://no-such-host.invalid:3001"})
    async with gateway(settings) as client:
        started = time.monotonic()
        response = await client.get("/api/auth/me", headers=bearer(tokens.access()))
    assert response.status_code == 503
    assert time.monotonic() - started < 3


async def test_upstream_stalling_mid_body_is_cut_off(tokens: Tokens) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # and never finish the body

    async with raw_server(stall) as port:
        settings = make_settings(services={"auth": f"http://127.0.0.1:{port}"}, upstream_timeout_seconds=0.3)
        async with gateway(settings) as client:
            started = time.monotonic()
            # The answer has begun, so it cannot become a 503: the connection is dropped instead
            # of a truncated body being passed off as complete.
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/api/auth/me", headers=bearer(tokens.access()))
            assert time.monotonic() - started < 2


async def test_websockets_under_api_other_than_live_updates_are_refused(tokens: Tokens) -> None:
    app = create_app(make_settings())
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/api/bots/ws",
        "raw_path": b"/api/bots/ws",
        "query_string": f"token={tokens.access()}".encode(),
        "headers": [],
        "client": ("203.0.113.1", 1),
        "server": ("gateway.test", 80),
        "scheme": "ws",
        "subprotocols": [],
    }
    async with LifespanManager(app) as manager:
        await manager.app(scope, receive, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_the_upstream_gets_the_gateway_span_as_parent_never_the_client_traceparent(
    auth_up: Upstream, tokens: Tokens, spans: Any
) -> None:
    client_trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {**bearer(tokens.access()), "traceparent": f"00-{client_trace}-b7ad6b7169203331-01"}
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        await client.get("/api/auth/me", headers=headers)
    sent = [value for name, value in auth_up.calls[0]["header_list"] if name == "traceparent"]
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(sent) == 1 and len(server) == 1
    assert server[0].name == "GET proxy:auth"
    # The gateway's server span continues the caller's trace; the service's parent is that span.
    _, trace_id, parent_id, _ = sent[0].split("-")
    assert trace_id == client_trace == format(server[0].context.trace_id, "032x")
    assert parent_id == format(server[0].context.span_id, "016x")


async def test_tracing_off_forwards_no_traceparent(auth_up: Upstream, tokens: Tokens) -> None:
    headers = {
        **bearer(tokens.access()),
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    async with gateway(make_settings(), {"auth": auth_up.transport()}) as client:
        await client.get("/api/auth/me", headers=headers)
    assert "traceparent" not in auth_up.calls[0]["headers"]

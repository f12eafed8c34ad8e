"""Test support (used by the gateway's and the integration tests): upstream stand-ins, servers, polling."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from common.security import TokenService, TokenType
from common.testing.infra import free_port
from gateway.main import create_app
from gateway.settings import Settings

FRONTEND = "http://localhost:3009"


@dataclass
class Upstream:
    """A service stand-in that records every request it receives."""

    name: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # requests held by the `_slow` route right now
    app: FastAPI = field(init=False)

    def __post_init__(self) -> None:
        self.app = _upstream_app(self)

    def transport(self) -> httpx.ASGITransport:
        """An in-process transport to this upstream."""
        return httpx.ASGITransport(self.app, raise_app_exceptions=False)


def _upstream_app(upstream: Upstream) -> FastAPI:
    app = FastAPI(title=f"{upstream.name} test service")

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    # Under any prefix (/api/auth/_slow, /api/bots/_slow...), so that every route can reach them.
    @app.api_route("/{prefix:path}/_slow", methods=["GET", "POST"], include_in_schema=False)
    async def slow(prefix: str) -> dict[str, str]:
        # Answers only when the test lets it: a hung upstream.
        upstream.waiting += 1
        try:
            await upstream.release.wait()
        finally:
            upstream.waiting -= 1
        return {"prefix": prefix}

    @app.get("/{prefix:path}/_stream/{size}")
    async def stream(prefix: str, size: int) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(size // 1000):
                yield b"x" * 1000

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/{prefix:path}/_status/{code}")
    async def status(prefix: str, code: int) -> Response:
        return JSONResponse(
            {"upstream": upstream.name, "code": code},
            status_code=code,
            headers={"x-upstream": upstream.name, "set-cookie": "s=1; HttpOnly"},
        )

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def echo(request: Request, path: str) -> Response:
        body = await request.body()
        seen = {
            "service": upstream.name,
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope.get("raw_path", b"").decode(),
            "query": request.url.query,
            "headers": dict(request.headers),
            "header_list": [(k.decode(), v.decode()) for k, v in request.scope["headers"]],
            "body": body.decode(errors="replace"),
        }
        upstream.calls.append(seen)
        return JSONResponse(seen, headers={"x-upstream": upstream.name})

    return app


def make_settings(**overrides: Any) -> Settings:
    """Gateway settings for tests: the test environment, no real upstream URLs unless given."""
    values: dict[str, Any] = {
        "environment": "test",
        "redis_url": "memory://",
        "rabbitmq_url": "memory://",
        "services": {},
        "access_log": False,
        "health_timeout_seconds": 1.0,
        "upstream_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def gateway(
    settings: Settings,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    client_addr: tuple[str, int] = ("203.0.113.7", 40000),
    probe_transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A running gateway app and an HTTP client talking to it in-process from `client_addr`."""
    app = create_app(settings, transports, probe_transports)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(manager.app, client=client_addr)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 5.0, interval: float = 0.01
) -> None:
    """Poll until `predicate` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = predicate()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


@asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn on a free loopback port, in this event loop (`options` to uvicorn)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield port
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def raw_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A TCP server on a free loopback port running `handler` per connection."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


def unsigned_token(claims: Mapping[str, Any]) -> str:
    """A JWT with `alg: none` (no signature)."""

    def part(value: Mapping[str, Any]) -> str:
        raw = json.dumps(dict(value), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}."


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


class Tokens:
    """Issues tokens signed with given JWT settings."""

    def __init__(self, settings: Settings) -> None:
        self.service = TokenService.from_settings(settings)

    def access(self, user_id: str = "user-1", email: str = "user@example.com") -> str:
        """A valid access token."""
        return self.service.issue(TokenType.ACCESS, user_id=user_id, email=email).token

    def refresh(self, user_id: str = "user-1") -> str:
        """A valid refresh token (not an access token)."""
        return self.service.issue(TokenType.REFRESH, user_id=user_id, email="user@example.com").token

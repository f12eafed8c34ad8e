"""Test support for the notifier (and the e2e tests): settings of an app under test, a local webhook receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import uvicorn

from common.testing.infra import free_port
from common.testing.service import Backend
from common.testing.wait import eventually
from notifier.settings import Settings

JWT_SECRET = "notifier-tests-jwt-secret-0123456789abcdef-0123456789abcdef-0123"


def make_settings(backend: Backend, namespace: str, **overrides: Any) -> Settings:
    """Settings for one app under test: its namespaces, quick retries."""
    values: dict[str, Any] = dict(backend.values(namespace))
    values.update(
        jwt_secret=JWT_SECRET,
        delivery_retry_base_seconds=0.2,
        delivery_retry_cap_seconds=1.0,
        delivery_timeout_seconds=3.0,
        delivery_poll_seconds=0.2,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass(frozen=True)
class Received:
    """One request a Receiver got: its headers (lower-case names) and body."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, decimals exact."""
        return json.loads(self.body, parse_float=Decimal)


@dataclass
class Receiver:
    """A local webhook receiver (a real HTTP server on loopback) that records every request; it answers
    `fail_status` to the first `fail_first` ones (or redirects every one to `redirect_to`), then 204."""

    fail_first: int = 0
    fail_status: int = 500
    redirect_to: str | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}/hook"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.received.append(Received(headers, body))
        if self.redirect_to is not None:
            status, extra = 302, [(b"location", self.redirect_to.encode())]
        elif len(self.received) <= self.fail_first:
            status, extra = self.fail_status, []
        else:
            status, extra = 204, []
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": b""})

    async def __aenter__(self) -> Receiver:
        self.port = free_port()
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await eventually(lambda: _started(self._server), timeout=10, interval=0.05, message="receiver not up")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


async def _started(server: uvicorn.Server | None) -> bool:
    return server is not None and server.started


def verify(secret: str, received: Received) -> bool:
    """Whether a request's X-Gridbot-Signature is the HMAC-SHA256 of its body with `secret` (as a receiver
    checks it: constant-time)."""
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("x-gridbot-signature", ""))

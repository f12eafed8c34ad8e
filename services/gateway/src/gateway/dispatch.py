"""The hot path for /api: route, verify the token, count the rate limit, forward (plain ASGI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from common import tracing
from common.errors import AppError, ErrorCode
from common.security import ADMIN_ROLE, Principal, VerifiedTokens
from common.web import error_response
from gateway.admission import RETRY_AFTER_SECONDS, Admission
from gateway.checks import RequestChecks
from gateway.clientip import TrustedProxies
from gateway.live.endpoint import LIVE_PATH, LiveEndpoint
from gateway.proxy import Forwarder
from gateway.ratelimit import Rules
from gateway.routing import (
    GATEWAY_SERVICE,
    PublicPaths,
    RouteTable,
    has_dot_segment,
    is_admin_path,
    is_api_path,
)

_RETRY = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]


@dataclass(frozen=True, slots=True)
class Components:
    """What the request path needs; built by the app's lifespan (it owns connections)."""

    routes: RouteTable
    public: PublicPaths
    tokens: VerifiedTokens
    checks: RequestChecks
    rules: Rules
    proxies: TrustedProxies
    forwarder: Forwarder
    admission: Admission
    live: LiveEndpoint | None = None


@dataclass(slots=True)
class Runtime:
    """Filled by the lifespan, read by the middleware (built before the lifespan runs)."""

    components: Components | None = None


class GatewayMiddleware:
    """Serves every /api request itself; the rest (health, docs, 404s) falls through to `app`."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not is_api_path(path):
            if scope["type"] == "websocket" and is_api_path(path):
                live = self.runtime.components.live if self.runtime.components is not None else None
                if live is not None and path.rstrip("/") == LIVE_PATH:
                    await live(scope, receive, send)
                    return
                # No other WebSocket under /api: refuse rather than fall into FastAPI.
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return

        c = self.runtime.components
        if c is None:
            await _error(scope, receive, send, ErrorCode.SERVICE_UNAVAILABLE, {"service": "gateway"})
            return
        service = c.routes.service_for(path)
        if service is None or has_dot_segment(path):
            await _error(scope, receive, send, ErrorCode.NOT_FOUND)
            return

        # The HTTP metrics' route label of a proxied request: the service, never the raw path.
        scope.setdefault("state", {})["metrics_route"] = f"proxy:{service}"
        if not c.admission.enter(service, scope["method"]):
            # Before any other work: past the cap a refusal must cost next to nothing.
            await _error(scope, receive, send, ErrorCode.SERVICE_UNAVAILABLE, {"service": service}, _RETRY)
            return
        try:
            await self._serve(c, scope, receive, send, service, path)
        finally:
            c.admission.leave(service)

    async def _serve(
        self, c: Components, scope: Scope, receive: Receive, send: Send, service: str, path: str
    ) -> None:
        """Verify, count and forward one admitted request."""
        method: str = scope["method"]
        tracing.name_server_span(f"{method} proxy:{service}")  # not the raw path: ids in it are unbounded
        authorization: str | None = None
        forwarded_for: str | None = None
        forwarded_host: bytes | None = None
        forwarded_proto: str | None = None
        host = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                text = value.decode("latin-1")
                forwarded_for = f"{forwarded_for},{text}" if forwarded_for else text
            elif name == b"host":
                host = value
            elif name == b"x-forwarded-host":
                forwarded_host = value
            elif name == b"x-forwarded-proto":
                forwarded_proto = value.decode("latin-1")
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        client_ip = c.proxies.client_ip(peer, forwarded_for)

        principal: Principal | None = None
        auth_error: ErrorCode | None = None
        if not c.public.is_public(method, path):
            try:
                principal = c.tokens.authenticate(authorization)
            except AppError as exc:
                auth_error = exc.code

        rule = c.rules.rule_for(method, path)
        user = None if rule.per_ip or principal is None else principal.user_id
        identity = f"user:{user}" if user is not None else f"ip:{client_ip}"
        decision, refusal = await c.checks.run(rule, identity, principal)
        limit_headers = decision.headers() if decision is not None else []
        if decision is not None and not decision.allowed:
            await _error(scope, receive, send, ErrorCode.RATE_LIMIT_EXCEEDED, headers=limit_headers)
            return
        if auth_error is not None:
            await _error(scope, receive, send, auth_error, headers=limit_headers)
            return
        if refusal is ErrorCode.SERVICE_UNAVAILABLE:
            # Fail closed: we cannot tell whether this token was logged out or its user disabled.
            await _error(scope, receive, send, refusal, {"service": "redis"}, limit_headers)
            return
        if refusal is not None:
            await _error(scope, receive, send, refusal, headers=limit_headers)
            return
        if is_admin_path(path) and (principal is None or principal.role != ADMIN_ROLE):
            # Every path under /api/admin, existing or not: nothing about the routes is told to others.
            await _error(scope, receive, send, ErrorCode.FORBIDDEN, headers=limit_headers)
            return
        if service == GATEWAY_SERVICE:
            scope["state"]["principal"] = principal
            await self.app(scope, receive, send)
            return

        trusted_peer = peer is not None and c.proxies.enabled and c.proxies.is_trusted(peer)
        https = c.proxies.is_https(scope.get("scheme", "http"), peer, forwarded_proto)
        chain = f"{forwarded_for}, {peer}" if trusted_peer and forwarded_for else (peer or "")
        forwarded = [
            (b"x-request-id", _request_id(scope).encode()),
            (b"x-forwarded-for", chain.encode("latin-1")),
            (b"x-forwarded-proto", b"https" if https else b"http"),
            (b"x-forwarded-host", forwarded_host if trusted_peer and forwarded_host else host),
            (b"x-real-ip", client_ip.encode("latin-1")),
            *tracing.outgoing_headers(),  # traceparent of this request's span (none while tracing is off)
        ]
        await c.forwarder.forward(scope, receive, send, service, forwarded, limit_headers)


def _request_id(scope: Scope) -> str:
    # Set by the kit's RequestContextMiddleware, which runs before us.
    state: dict[str, Any] = scope.get("state") or {}
    return str(state.get("request_id") or "")


async def _error(
    scope: Scope,
    receive: Receive,
    send: Send,
    code: ErrorCode,
    details: dict[str, Any] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    response = error_response(code, details)
    if headers:
        response.raw_headers.extend(headers)
    await response(scope, receive, send)

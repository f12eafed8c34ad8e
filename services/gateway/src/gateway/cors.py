"""The edge middleware: CORS for FRONTEND_URL (preflights answered here) and security headers."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.context import sanitize_request_id
from gateway.clientip import TrustedProxies
from gateway.security_headers import add_security_headers

ALLOWED_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = b"Authorization, Content-Type, Accept, Accept-Language, X-Request-ID"
# Without this list the frontend's JavaScript could not read our request id or the rate-limit state.
EXPOSED_HEADERS = b"X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
PREFLIGHT_MAX_AGE = b"600"


class EdgeMiddleware:
    """Outermost layer: answers CORS preflights itself, adds edge headers to every response."""

    def __init__(self, app: ASGIApp, *, frontend_origin: str, proxies: TrustedProxies) -> None:
        self.app = app
        self.origin = frontend_origin.encode()
        self.proxies = proxies
        self.cors_headers = [
            (b"access-control-allow-origin", self.origin),
            (b"access-control-allow-credentials", b"true"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = None
        forwarded_proto = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"x-forwarded-proto":
                forwarded_proto = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight = True
        client = scope.get("client")
        https = self.proxies.is_https(
            scope.get("scheme", "http"), client[0] if client else None, forwarded_proto
        )
        allowed = origin is not None and origin.lower() == self.origin

        if preflight and origin is not None and scope["method"] == "OPTIONS":
            await self._preflight(scope, send, allowed, https)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", []) if not h[0].lower().startswith(b"access-control-")
                ]
                if origin is not None:
                    if allowed:
                        headers.extend(self.cors_headers)
                        headers.append((b"access-control-expose-headers", EXPOSED_HEADERS))
                    headers = _add_vary_origin(headers)
                message = {**message, "headers": add_security_headers(headers, https)}
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _preflight(self, scope: Scope, send: Send, allowed: bool, https: bool) -> None:
        # Never forwarded: upstreams neither see nor answer preflights.
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
        headers: list[tuple[bytes, bytes]] = [
            (b"vary", b"Origin"),
            (b"x-request-id", sanitize_request_id(request_id).encode()),
            (b"content-length", b"0"),
        ]
        if allowed:
            headers += self.cors_headers
            headers += [
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", ALLOWED_HEADERS),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            ]
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": add_security_headers(headers, https),
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _add_vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"origin" not in value.lower():
                headers[i] = (name, value + b", Origin")
            return headers
    headers.append((b"vary", b"Origin"))
    return headers

"""`GET /api/ws`: the handshake (token, revocation, rate limit, caps), then the socket's life.

The token comes from `Sec-WebSocket-Protocol: bearer, <token>` (a browser's `new WebSocket(url, ["bearer",
token])`; the server answers the subprotocol `bearer`, as browsers require) or from `?token=`. It is verified
exactly as an HTTP request's is. A refused handshake is accepted and closed at once with a code and a short
reason (1008 and the error code for an authentication failure, VALIDATION_ERROR for more than one token),
because a handshake refused at the HTTP level reaches a browser as a bare 1006 with no code at all.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from common.errors import AppError, ErrorCode
from common.security import VerifiedTokens
from gateway.checks import RequestChecks
from gateway.live.hub import LiveHub
from gateway.live.socket import POLICY_VIOLATION, TRY_AGAIN_LATER, Limits, LiveSocket
from gateway.ratelimit import Rules

log = logging.getLogger(__name__)

LIVE_PATH = "/api/ws"
SUBPROTOCOL = "bearer"


class LiveEndpoint:
    """Serves WebSocket connections on LIVE_PATH."""

    def __init__(
        self,
        hub: LiveHub,
        tokens: VerifiedTokens,
        checks: RequestChecks,
        rules: Rules,
        limits: Limits,
        frontend_origin: str,
    ) -> None:
        self.hub = hub
        self._tokens = tokens
        self._checks = checks
        self._rules = rules
        self._limits = limits
        self._origin = frontend_origin.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point of one WebSocket connection."""
        if (await receive())["type"] != "websocket.connect":
            return
        token, subprotocol, ambiguous = _token(scope)
        if ambiguous:
            await _refuse(send, subprotocol, POLICY_VIOLATION, ErrorCode.VALIDATION_ERROR.value)
            return
        refusal, socket = await self._authenticate(scope, token)
        if refusal is not None or socket is None:
            code, reason = refusal or (POLICY_VIOLATION, ErrorCode.UNAUTHORIZED.value)
            await _refuse(send, subprotocol, code, reason)
            return
        refusal = self.hub.admit(socket)
        if refusal is not None:
            await _refuse(send, subprotocol, *refusal)
            return
        if not await self.hub.route(socket.user_id):
            self.hub.leave(socket)
            await _refuse(send, subprotocol, TRY_AGAIN_LATER, ErrorCode.SERVICE_UNAVAILABLE.value)
            return
        loader: asyncio.Task[None] | None = None
        try:
            await send({"type": "websocket.accept", "subprotocol": subprotocol})
            assert token is not None
            loader = asyncio.create_task(self.hub.load_bots(socket.user_id, token))
            await socket.run(receive, send)
        except OSError:
            pass  # the client went away during the handshake
        finally:
            if loader is not None:
                loader.cancel()
            self.hub.leave(socket)

    async def _authenticate(
        self, scope: Scope, token: str | None
    ) -> tuple[tuple[int, str] | None, LiveSocket | None]:
        origin = next((v for k, v in scope.get("headers", []) if k == b"origin"), None)
        # Tokens are not ambient credentials, but a browser page from elsewhere has no business here either.
        if origin is not None and origin.lower() != self._origin:
            return (POLICY_VIOLATION, ErrorCode.FORBIDDEN.value), None
        try:
            principal = self._tokens.authenticate(f"Bearer {token}" if token else None)
        except AppError as exc:
            return (POLICY_VIOLATION, exc.code.value), None
        rule = self._rules.rule_for("GET", LIVE_PATH)
        decision, refusal = await self._checks.run(rule, f"user:{principal.user_id}", principal)
        if decision is not None and not decision.allowed:
            return (TRY_AGAIN_LATER, ErrorCode.RATE_LIMIT_EXCEEDED.value), None
        if refusal is ErrorCode.SERVICE_UNAVAILABLE:
            # Fail closed, as HTTP requests do: we cannot tell whether this token was logged out.
            return (TRY_AGAIN_LATER, refusal.value), None
        if refusal is not None:
            return (POLICY_VIOLATION, refusal.value), None
        socket = LiveSocket(principal.user_id, principal.jti, principal.expires_at.timestamp(), self._limits)
        return None, socket


def _token(scope: Scope) -> tuple[str | None, str | None, bool]:
    """(the token, the subprotocol to answer, whether more than one token was offered).

    The protocol header first, else the query string. Two tokens are refused rather than picked from:
    whichever one the gateway verified, another could be read further on.
    """
    offered: list[str] = list(scope.get("subprotocols") or [])
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True)
    values = query.get("token") or []
    if SUBPROTOCOL in offered:
        others = [p for p in offered if p != SUBPROTOCOL]
        return (others[0] if others else None), SUBPROTOCOL, len(others) + len(values) > 1
    return (values[0] if values else None), None, len(values) > 1


async def _refuse(send: Send, subprotocol: str | None, code: int, reason: str) -> None:
    try:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await send({"type": "websocket.close", "code": code, "reason": reason})
    except OSError:
        pass  # the client did not wait for the answer

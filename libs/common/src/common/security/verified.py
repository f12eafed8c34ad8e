"""The bearer header, and access-token verification with a cache of tokens that already passed it."""

from __future__ import annotations

from collections.abc import Callable

from common.errors import AppError, ErrorCode
from common.security.tokens import Principal, TokenService, TokenType


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or UNAUTHORIZED."""
    if not authorization:
        raise AppError(ErrorCode.UNAUTHORIZED)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AppError(ErrorCode.UNAUTHORIZED)
    return token


class VerifiedTokens:
    """Verifies bearer access tokens; a token seen before skips the HMAC and JSON work.

    Only tokens that passed `TokenService.verify` are remembered, keyed by the whole token string (a
    tampered token is another string), and each use re-checks the expiry (on the token service's clock
    unless given one). Revocation is not cached: the caller asks the revocation list on every request.
    """

    def __init__(
        self, tokens: TokenService, max_size: int = 10_000, clock: Callable[[], float] | None = None
    ) -> None:
        self._tokens = tokens
        self._max_size = max_size
        self._clock = clock or tokens.clock
        self._seen: dict[str, tuple[Principal, float]] = {}

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization: Bearer` access token; UNAUTHORIZED or INVALID_TOKEN."""
        token = bearer_token(authorization)
        hit = self._seen.get(token)
        if hit is not None:
            principal, expires = hit
            if expires > self._clock():
                return principal
            del self._seen[token]
            raise AppError(ErrorCode.INVALID_TOKEN)
        principal = self._tokens.verify(token, TokenType.ACCESS)
        if len(self._seen) >= self._max_size:
            # Forget the oldest entry (dicts keep insertion order): a cheap FIFO is enough here.
            del self._seen[next(iter(self._seen))]
        self._seen[token] = (principal, principal.expires_at.timestamp())
        return principal

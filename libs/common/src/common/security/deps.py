"""The FastAPI dependency that authenticates a request: every service checks tokens itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.errors import AppError, ErrorCode
from common.security.revocation import RevocationList
from common.security.tokens import ADMIN_ROLE, Principal, TokenService
from common.security.verified import VerifiedTokens


@dataclass(frozen=True, slots=True)
class AuthState:
    """What a service keeps on `app.state.auth` to verify tokens."""

    tokens: TokenService
    revocations: RevocationList
    # A token's signature and claims are checked once per process (they cannot change); its revocation and
    # its user's disabled marker are read on every request, so a logout or a disable takes effect at once.
    verified: VerifiedTokens = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verified", VerifiedTokens(self.tokens))

    async def authenticate(self, authorization: str | None) -> Principal:
        """Verify an Authorization header value: UNAUTHORIZED without a bearer token, INVALID_TOKEN when bad."""
        principal = self.verified.authenticate(authorization)
        refusal = await self.revocations.refusal(principal.jti, principal.user_id)
        if refusal is not None:
            raise AppError(refusal)
        return principal


BEARER_SCHEME = "bearerAuth"
BEARER_DESCRIPTION = "The access token of POST /api/auth/register, /login or /refresh."
# Only so that the OpenAPI document marks every authenticated route: it never refuses anything itself
# (auto_error=False); `bearer_token` reads the header and gives the contract's error codes.
_DOCUMENTED_BEARER = HTTPBearer(
    scheme_name=BEARER_SCHEME, bearerFormat="JWT", description=BEARER_DESCRIPTION, auto_error=False
)


async def current_principal(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_DOCUMENTED_BEARER)] = None,
) -> Principal:
    """Authenticate the request with the app's AuthState."""
    state: AuthState = request.app.state.auth
    return await state.authenticate(request.headers.get("authorization"))


CurrentUser = Annotated[Principal, Depends(current_principal)]


async def current_admin(principal: CurrentUser) -> Principal:
    """An administrator's principal; anyone else gets 403 FORBIDDEN (nothing more about the route)."""
    if principal.role != ADMIN_ROLE:
        raise AppError(ErrorCode.FORBIDDEN)
    return principal


AdminUser = Annotated[Principal, Depends(current_admin)]

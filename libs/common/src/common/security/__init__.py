"""JWT issue/verify, the revocation list and the FastAPI dependency that every service uses."""

from common.security.deps import AuthState, CurrentUser, bearer_token, current_principal
from common.security.revocation import RevocationList
from common.security.tokens import IssuedToken, Principal, TokenService, TokenType, user_uuid

__all__ = [
    "AuthState",
    "CurrentUser",
    "IssuedToken",
    "Principal",
    "RevocationList",
    "TokenService",
    "TokenType",
    "bearer_token",
    "current_principal",
    "user_uuid",
]

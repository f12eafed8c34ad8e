"""JWT issue/verify, the revocation list and the FastAPI dependency that every service uses."""

from common.security.deps import (
    AdminUser,
    AuthState,
    CurrentUser,
    current_admin,
    current_principal,
)
from common.security.revocation import RevocationList, refusal_of
from common.security.tokens import (
    ADMIN_ROLE,
    ROLES,
    USER_ROLE,
    IssuedToken,
    Principal,
    TokenService,
    TokenType,
    user_uuid,
)
from common.security.verified import VerifiedTokens, bearer_token

__all__ = [
    "ADMIN_ROLE",
    "ROLES",
    "USER_ROLE",
    "AdminUser",
    "AuthState",
    "CurrentUser",
    "IssuedToken",
    "Principal",
    "RevocationList",
    "TokenService",
    "TokenType",
    "VerifiedTokens",
    "bearer_token",
    "current_admin",
    "current_principal",
    "refusal_of",
    "user_uuid",
]

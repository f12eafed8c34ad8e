"""Access and refresh JWTs: HS256 only, a `kid` per key for rotation, required claims checked."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt
from pydantic import SecretStr

from common.errors import AppError, ErrorCode
from common.settings import JwtSettings

ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "jti", "type", "userId", "email", "iss"]


class TokenType(StrEnum):
    """The `type` claim: an access token never works as a refresh token, and the reverse."""

    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed token and the facts the issuer must remember about it."""

    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified claims of a token."""

    user_id: str
    email: str
    jti: str
    token_type: TokenType
    expires_at: datetime
    family: str | None = None
    role: str = "user"  # "admin" for administrators (API.md "Roles and administration")


USER_ROLE = "user"
ADMIN_ROLE = "admin"
ROLES = (USER_ROLE, ADMIN_ROLE)


def user_uuid(user_id: str) -> uuid.UUID:
    """A token's user id as services store it; our tokens always carry a UUID, anything else is not ours."""
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise AppError(ErrorCode.INVALID_TOKEN) from None


class TokenService:
    """Signs and verifies the system's JWTs with a set of HS256 keys, one of them active."""

    def __init__(
        self,
        keys: Mapping[str, SecretStr],
        active_kid: str,
        *,
        issuer: str = "gridbot",
        access_ttl_seconds: int = 3600,
        refresh_ttl_seconds: int = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if active_kid not in keys:
            raise ValueError("the active kid must be one of the keys")
        self._keys = {kid: secret.get_secret_value().encode() for kid, secret in keys.items()}
        self._active = active_kid
        self._issuer = issuer
        self._ttl = {TokenType.ACCESS: access_ttl_seconds, TokenType.REFRESH: refresh_ttl_seconds}
        self._clock = clock

    @property
    def clock(self) -> Callable[[], float]:
        """The clock expiries are checked against."""
        return self._clock

    @classmethod
    def from_settings(cls, settings: JwtSettings) -> TokenService:
        """Build from a service's JWT settings."""
        return cls(
            settings.jwt_keys(),
            settings.jwt_kid,
            issuer=settings.jwt_issuer,
            access_ttl_seconds=settings.access_token_ttl_seconds,
            refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
        )

    def issue(
        self,
        token_type: TokenType,
        *,
        user_id: str,
        email: str,
        family: str | None = None,
        role: str = USER_ROLE,
    ) -> IssuedToken:
        """Sign a new token of the given type."""
        now = int(self._clock())
        exp = now + self._ttl[token_type]
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "userId": user_id,
            "email": email,
            "jti": jti,
            "type": token_type.value,
            "iss": self._issuer,
            "iat": now,
            "exp": exp,
        }
        if family is not None:
            claims["fam"] = family
        if role != USER_ROLE:
            claims["role"] = role  # a plain user's tokens stay as they were
        token = jwt.encode(
            claims, self._keys[self._active], algorithm=ALGORITHM, headers={"kid": self._active}
        )
        return IssuedToken(token=token, jti=jti, expires_at=datetime.fromtimestamp(exp, UTC))

    def verify(self, token: str, expected: TokenType) -> Principal:
        """Verify signature, algorithm, kid, issuer, expiry, required claims and type; else INVALID_TOKEN."""
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if header.get("alg") != ALGORITHM or not isinstance(kid, str) or kid not in self._keys:
                raise AppError(ErrorCode.INVALID_TOKEN)
            claims = jwt.decode(
                token,
                self._keys[kid],
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                # Expiry is checked below against our own clock (injectable), not the library's.
                options={"require": _REQUIRED, "verify_iat": False, "verify_exp": False},
            )
            if not isinstance(claims["exp"], int | float) or claims["exp"] <= self._clock():
                raise AppError(ErrorCode.INVALID_TOKEN)
            token_type = TokenType(claims["type"])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise AppError(ErrorCode.INVALID_TOKEN) from exc
        if token_type is not expected:
            raise AppError(ErrorCode.INVALID_TOKEN)
        user_id, email, jti, fam, role = (
            claims["userId"],
            claims["email"],
            claims["jti"],
            claims.get("fam"),
            claims.get("role", USER_ROLE),
        )
        if (
            not all(isinstance(v, str) and v for v in (user_id, email, jti))
            or not isinstance(fam, str | None)
            or role not in ROLES
        ):
            raise AppError(ErrorCode.INVALID_TOKEN)
        return Principal(
            user_id=user_id,
            email=email,
            jti=jti,
            token_type=token_type,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            family=fam,
            role=role,
        )

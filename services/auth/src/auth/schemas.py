"""Request and response bodies of the auth routes (camelCase on the wire)."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema

from auth.models import EMAIL_LENGTH, NAME_LENGTH
from common.contracts.public import Pagination
from common.schemas import RequestModel, ResponseModel

PASSWORD_MIN = 8
PASSWORD_MAX = 128
# A JWT of ours is ~300 bytes; anything far longer is not one and is refused before parsing.
TOKEN_MAX = 4096


def _encodable(value: str) -> str:
    # json.loads accepts lone surrogates ("\ud800"); they cannot be UTF-8 encoded, hashed, stored or
    # serialised, so they are refused here instead of failing deep inside.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains invalid characters") from None
    return value


def normalise_email(value: str) -> str:
    """Trimmed, syntax-checked (no DNS lookup), lower-cased: the one form stored and looked up."""
    try:
        result = validate_email(_encodable(value).strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from None
    return result.normalized.lower()


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = _encodable(value).strip()
    if any(unicodedata.category(c) == "Cc" for c in value):
        # NUL cannot be stored in PostgreSQL text; other control characters have no place in a name.
        raise ValueError("contains control characters")
    return value or None


Email = Annotated[
    str,
    Field(min_length=3, max_length=EMAIL_LENGTH),
    AfterValidator(normalise_email),
    # Documented as what it is: an address (syntax-checked; case and surrounding blanks do not matter).
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": EMAIL_LENGTH,
            "description": "An address at a special-use domain (RFC 6761: .test, .local, …) is refused",
            "examples": ["user@example.com"],
        }
    ),
]
Password = Annotated[str, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX), AfterValidator(_encodable)]
# Login does not re-apply the password policy: a too-short password is simply a wrong one.
LoginPassword = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX), AfterValidator(_encodable)]
Token = Annotated[str, Field(min_length=1, max_length=TOKEN_MAX)]


class RegisterRequest(RequestModel):
    """POST /auth/register."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "user@example.com", "password": "securePassword123", "name": "홍길동"}]
        }
    )

    email: Email
    password: Password
    name: Annotated[
        str | None,
        Field(max_length=NAME_LENGTH),
        AfterValidator(_clean_name),
        WithJsonSchema(
            {
                "anyOf": [
                    # No control characters (Unicode category Cc): they have no place in a name.
                    {"type": "string", "maxLength": NAME_LENGTH, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"},
                    {"type": "null"},
                ],
                "examples": ["홍길동"],
            }
        ),
    ] = None


class LoginRequest(RequestModel):
    """POST /auth/login."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "user@example.com", "password": "securePassword123"}]}
    )

    email: Email
    password: LoginPassword


class RefreshRequest(RequestModel):
    """POST /auth/refresh."""

    refresh_token: Token


class LogoutRequest(RequestModel):
    """POST /auth/logout (optional body): also revoke this refresh token's family."""

    refresh_token: Token | None = None


class TokenPairData(ResponseModel):
    """`data` of POST /auth/refresh."""

    token: str
    refresh_token: str


class RegisterData(ResponseModel):
    """`data` of POST /auth/register (fields in the contract's order)."""

    user_id: str
    email: str
    token: str
    refresh_token: str


class LoginData(ResponseModel):
    """`data` of POST /auth/login (fields in the contract's order)."""

    user_id: str
    email: str
    name: str | None
    token: str
    refresh_token: str


class MeData(ResponseModel):
    """`data` of GET /auth/me."""

    user_id: str
    email: str
    name: str | None
    created_at: str = Field(description="ISO 8601 UTC with milliseconds, e.g. 2025-01-23T10:30:00.000Z")
    role: Literal["user", "admin"] = Field(
        description="`admin` for administrators (ADMIN_EMAILS, make admin)"
    )


class AdminUserData(ResponseModel):
    """One user as an administrator sees them."""

    user_id: str
    email: str
    name: str | None
    role: Literal["user", "admin"]
    disabled: bool
    disabled_at: str | None = Field(description="When an administrator disabled the user (ISO 8601 UTC)")
    created_at: str


class AdminUsersData(ResponseModel):
    """`data` of GET /admin/users."""

    users: list[AdminUserData]
    pagination: Pagination


class DisabledData(ResponseModel):
    """`data` of POST /admin/users/:id/disable."""

    user: AdminUserData
    bots_stopped: int = Field(description="Bots of the user stopped now (their orders cancelled)")

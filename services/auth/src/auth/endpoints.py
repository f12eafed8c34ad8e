"""The public auth routes (served at their public paths: the gateway forwards them unchanged)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, Query, Request
from starlette.responses import Response

from auth.deps import Admin, DbSession, ReadSession, Service
from auth.repository import UserView
from auth.schemas import (
    AdminUserData,
    AdminUsersData,
    DisabledData,
    LoginData,
    LoginRequest,
    LogoutRequest,
    MeData,
    RefreshRequest,
    RegisterData,
    RegisterRequest,
    TokenPairData,
)
from common.contracts.public import Pagination
from common.errors import ErrorCode
from common.i18n import t
from common.openapi import errors
from common.schemas import MessageOnly, Success
from common.security import AdminUser, CurrentUser
from common.web import ApiRouter, iso_utc, ok

router = ApiRouter(prefix="/api/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=201,
    response_model=Success[RegisterData],
    responses=errors(ErrorCode.EMAIL_ALREADY_EXISTS),
)
async def register(body: RegisterRequest, db: DbSession, service: Service) -> Response:
    """Create an account and sign in."""
    session = await service.register(db, body.email, body.password, body.name)
    data = RegisterData(
        user_id=str(session.user.id),
        email=session.user.email,
        token=session.tokens.access.token,
        refresh_token=session.tokens.refresh.token,
    )
    return ok(
        data.model_dump(by_alias=True),
        t("회원가입이 완료되었습니다", "Registration completed"),
        status_code=201,
    )


@router.post("/login", response_model=Success[LoginData], responses=errors(ErrorCode.INVALID_LOGIN))
async def login(body: LoginRequest, db: DbSession, service: Service) -> Response:
    """Sign in with email and password."""
    session = await service.login(db, body.email, body.password)
    data = LoginData(
        user_id=str(session.user.id),
        email=session.user.email,
        name=session.user.name,
        token=session.tokens.access.token,
        refresh_token=session.tokens.refresh.token,
    )
    return ok(data.model_dump(by_alias=True))


@router.post("/refresh", response_model=Success[TokenPairData], responses=errors(ErrorCode.INVALID_TOKEN))
async def refresh(body: RefreshRequest, db: DbSession, service: Service) -> Response:
    """Exchange a refresh token for a new pair (the old one is rotated out)."""
    pair = await service.refresh(db, body.refresh_token)
    data = TokenPairData(token=pair.access.token, refresh_token=pair.refresh.token)
    return ok(data.model_dump(by_alias=True))


@router.post("/logout", response_model=MessageOnly, responses=errors(ErrorCode.INVALID_TOKEN))
async def logout(
    principal: CurrentUser,
    db: DbSession,
    service: Service,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """Revoke the access token (and the refresh token's family when one is sent)."""
    await service.logout(db, principal, body.refresh_token if body else None)
    return ok(message=t("로그아웃되었습니다", "Logged out"))


@router.get("/me", response_model=Success[MeData], responses=errors(ErrorCode.USER_NOT_FOUND))
async def me(principal: CurrentUser, db: ReadSession, service: Service) -> Response:
    """The signed-in user's profile."""
    user = await service.me(db, principal)
    return ok(
        {
            "userId": str(user.id),
            "email": user.email,
            "name": user.name,
            "createdAt": iso_utc(user.created_at),
            "role": user.role,
        }
    )


# --- administration (API.md "Roles and administration") ------------------------------------------------------

admin_router = ApiRouter(prefix="/api/admin", tags=["admin"])
_ADMIN_ERRORS = (ErrorCode.FORBIDDEN,)


def _admin_view(user: UserView) -> dict[str, object]:
    return AdminUserData(
        user_id=str(user.id),
        email=user.email,
        name=user.name,
        role="admin" if user.role == "admin" else "user",
        disabled=user.disabled_at is not None,
        disabled_at=iso_utc(user.disabled_at) if user.disabled_at is not None else None,
        created_at=iso_utc(user.created_at),
    ).model_dump(by_alias=True)


@admin_router.get("/users", response_model=Success[AdminUsersData], responses=errors(*_ADMIN_ERRORS))
async def list_users(
    _: AdminUser,
    admin: Admin,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """Every user, oldest first (administrators only)."""
    users, total = await admin.users(limit, offset)
    pagination = Pagination(total=total, limit=limit, offset=offset, has_more=offset + len(users) < total)
    return ok({"users": [_admin_view(u) for u in users], "pagination": pagination.model_dump(by_alias=True)})


@admin_router.post(
    "/users/{user_id}/disable",
    response_model=Success[DisabledData],
    responses=errors(*_ADMIN_ERRORS, ErrorCode.USER_NOT_FOUND, ErrorCode.SERVICE_UNAVAILABLE),
)
async def disable_user(user_id: uuid.UUID, principal: AdminUser, admin: Admin, request: Request) -> Response:
    """Disable a user: every token refused at once (ACCOUNT_DISABLED), login refused, bots stopped."""
    done = await admin.disable(principal, request.headers.get("authorization", ""), user_id)
    return ok(
        {"user": _admin_view(done.user), "botsStopped": done.bots_stopped},
        t("사용자가 비활성화되었습니다", "The user was disabled"),
    )


@admin_router.post(
    "/users/{user_id}/enable",
    response_model=Success[AdminUserData],
    responses=errors(*_ADMIN_ERRORS, ErrorCode.USER_NOT_FOUND),
)
async def enable_user(user_id: uuid.UUID, _: AdminUser, admin: Admin) -> Response:
    """Let a disabled user sign in again (their bots stay stopped)."""
    return ok(
        _admin_view(await admin.enable(user_id)), t("사용자가 활성화되었습니다", "The user was enabled")
    )

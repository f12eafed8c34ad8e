"""The public auth routes (served at their public paths: the gateway forwards them unchanged)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body
from starlette.responses import Response

from auth.deps import DbSession, ReadSession, Service
from auth.schemas import (
    LoginData,
    LoginRequest,
    LogoutRequest,
    MeData,
    RefreshRequest,
    RegisterData,
    RegisterRequest,
    TokenPairData,
)
from common.errors import ErrorCode
from common.i18n import t
from common.openapi import errors
from common.schemas import MessageOnly, Success
from common.security import CurrentUser
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
        }
    )

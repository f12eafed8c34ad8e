"""Request-scoped dependencies: the database session (one per request) and the auth service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.admin import AdminService
from auth.service import AuthService, CommittedAppError
from common.db import unit_of_work


async def _write_session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with unit_of_work(factory) as session:
        try:
            yield session
        except CommittedAppError:
            # The request fails, but what it recorded (a revoked token family) must stand.
            await session.commit()
            raise


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.read_session_factory
    async with factory() as session:
        yield session


async def _service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


async def _admin(request: Request) -> AdminService:
    service: AdminService = request.app.state.admin_service
    return service


# scope="function": the session is committed and closed before the response is sent, so a client
# never sees success for a transaction that then fails to commit (FastAPI's default runs the exit
# code of yield dependencies after the response).
DbSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]
# Autocommit and read-only: a single statement, no BEGIN/COMMIT round trips (GET /auth/me).
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
Service = Annotated[AuthService, Depends(_service)]
Admin = Annotated[AdminService, Depends(_admin)]

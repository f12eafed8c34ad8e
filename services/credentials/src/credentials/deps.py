"""Request-scoped dependencies: database sessions, the service, and the internal caller check."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import unit_of_work
from common.errors import AppError, ErrorCode
from common.outbox import OutboxRelay, take_pending
from common.security import bearer_token
from credentials.service import CredentialService
from credentials.settings import Settings


async def _write_session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with unit_of_work(factory) as session:
        yield session
    # Committed: what this request enqueued may leave now rather than at the relay's next poll.
    if take_pending(session):
        relay: OutboxRelay = request.app.state.relay
        relay.nudge()


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.read_session_factory
    async with factory() as session:
        yield session


async def _service(request: Request) -> CredentialService:
    service: CredentialService = request.app.state.credential_service
    return service


def _matches(token: str, secret: SecretStr) -> bool:
    # compare_digest: the time taken does not depend on how much of the token was right.
    return hmac.compare_digest(token.encode(), secret.get_secret_value().encode())


async def keys_caller(request: Request) -> None:
    """Admit only the engine, which signs orders: `Authorization: Bearer <INTERNAL_KEYS_TOKEN>`."""
    token = bearer_token(request.headers.get("authorization"))
    settings: Settings = request.app.state.settings
    if not _matches(token, settings.internal_keys_token):
        raise AppError(ErrorCode.INVALID_TOKEN)


async def balance_caller(request: Request) -> None:
    """Admit only the bots service: `Authorization: Bearer <INTERNAL_BALANCE_TOKEN>` (it never opens keys)."""
    token = bearer_token(request.headers.get("authorization"))
    settings: Settings = request.app.state.settings
    if not _matches(token, settings.internal_balance_token):
        raise AppError(ErrorCode.INVALID_TOKEN)


# scope="function": committed and closed before the response is sent (FastAPI's default runs the exit
# code of yield dependencies after it), so a client never sees success for a failed commit.
DbSession = Annotated[AsyncSession, Depends(_write_session, scope="function")]
# Autocommit reads; also used before an exchange call, since an unused write session holds no connection.
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
Service = Annotated[CredentialService, Depends(_service)]
KeysCaller = Depends(keys_caller)
BalanceCaller = Depends(balance_caller)

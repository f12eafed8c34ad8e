"""Queries of the credentials schema; every one is scoped to its owner. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from credentials.models import Credential
from credentials.vault import SealedKeys


class DuplicateCredentialError(Exception):
    """The user already has a credential for that exchange (the unique constraint said so)."""


class CredentialRepository:
    """Credentials, always looked up by (user_id, exchange) or user_id: never by id alone."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def exists(self, user_id: str, exchange: str) -> bool:
        """True when the user has a credential for the exchange."""
        query = select(exists().where(Credential.user_id == user_id, Credential.exchange == exchange))
        return bool(await self._session.scalar(query))

    async def get(self, user_id: str, exchange: str) -> Credential | None:
        """The user's credential for the exchange."""
        query = select(Credential).where(Credential.user_id == user_id, Credential.exchange == exchange)
        return (await self._session.execute(query)).scalar_one_or_none()

    async def list(self, user_id: str) -> Sequence[Credential]:
        """Every credential of the user, oldest first."""
        query = (
            select(Credential)
            .where(Credential.user_id == user_id)
            .order_by(Credential.created_at, Credential.exchange)
        )
        return (await self._session.execute(query)).scalars().all()

    async def add(
        self,
        user_id: str,
        exchange: str,
        sealed: SealedKeys,
        last4: str,
        ip_whitelist: str | None,
        now: datetime,
    ) -> Credential:
        """Insert a validated credential; DuplicateCredentialError when one exists (even concurrently)."""
        row = Credential(
            id=uuid.uuid4(),
            user_id=user_id,
            exchange=exchange,
            api_key=sealed.api_key,
            secret_key=sealed.secret_key,
            key_version=sealed.version,
            key_last4=last4,
            ip_whitelist=ip_whitelist,
            is_valid=True,
            last_validated_at=now,
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        try:
            await self._session.flush()
        except IntegrityError as exc:
            # The id is a fresh uuid4: the only constraint an insert can break is (user_id, exchange).
            raise DuplicateCredentialError from exc
        return row

    async def replace(
        self,
        credential_id: uuid.UUID,
        user_id: str,
        sealed: SealedKeys,
        last4: str,
        ip_whitelist: str | None,
        now: datetime,
    ) -> bool:
        """Store re-validated keys on the user's row; False when the row is gone."""
        result = await self._session.execute(
            update(Credential)
            .where(Credential.id == credential_id, Credential.user_id == user_id)
            .values(
                api_key=sealed.api_key,
                secret_key=sealed.secret_key,
                key_version=sealed.version,
                key_last4=last4,
                ip_whitelist=ip_whitelist,
                is_valid=True,
                last_validated_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete(self, user_id: str, exchange: str) -> uuid.UUID | None:
        """Delete the user's credential for the exchange; its id, or None when there was none."""
        result = await self._session.execute(
            delete(Credential)
            .where(Credential.user_id == user_id, Credential.exchange == exchange)
            .returning(Credential.id)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none()

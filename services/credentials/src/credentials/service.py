"""Credential use cases: validate, create, read (masked), update (re-validated), delete, keys for the engine.

The exchange is called before any write, with no database connection held: a session that has not yet
executed anything holds none. Plaintext keys exist only in local variables and the ccxt client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from common.contracts.credentials import (
    CREDENTIALS_EXCHANGE,
    CredentialEvent,
    CredentialEventReason,
    CredentialEventType,
)
from common.errors import AppError, ErrorCode
from common.exchanges import Exchange, ExchangeCallError, quote_currency
from common.outbox import enqueue
from credentials.models import OUTBOX, Credential, utc_now
from credentials.repository import CredentialRepository, DuplicateCredentialError
from credentials.revalidate import StoredCredential, record_check
from credentials.validation import AccountInfo, ExchangeValidator, Outcome, is_rejection
from credentials.vault import CredentialVault, ExchangeKeys
from credentials.whitelist import whitelist_warnings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Saved:
    """A stored (created or updated) credential and the whitelist warnings about it."""

    credential: Credential
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class QuoteBalance:
    """A user's quote currency on an exchange as the bots service asks for it."""

    is_valid: bool
    currency: str
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class Changes:
    """What PUT asked to change (None: keep); `ip_whitelist_set` tells "clear" from "keep"."""

    api_key: str | None = None
    secret_key: str | None = None
    ip_whitelist: str | None = None
    ip_whitelist_set: bool = False

    def __repr__(self) -> str:
        def state(value: str | None) -> str:
            return "<new>" if value else "<keep>"

        return f"Changes(api_key={state(self.api_key)}, secret_key={state(self.secret_key)})"


class CredentialService:
    """The credential use cases; each works inside the caller's sessions and never commits."""

    def __init__(
        self,
        vault: CredentialVault,
        validator: ExchangeValidator,
        egress_ip: str | None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._vault = vault
        self._validator = validator
        self._egress_ip = egress_ip
        self._clock = clock

    async def validate(self, exchange: Exchange, keys: ExchangeKeys) -> AccountInfo:
        """Call the exchange with the keys; INVALID_CREDENTIALS or EXCHANGE_API_ERROR on failure."""
        return await self._validator.validate(exchange, keys)

    async def create(
        self,
        read: AsyncSession,
        write: AsyncSession,
        user_id: str,
        exchange: Exchange,
        keys: ExchangeKeys,
        ip_whitelist: str | None,
    ) -> Saved:
        """Validate, then store sealed; CREDENTIAL_ALREADY_EXISTS when the user has one for the exchange."""
        # Checked first so that a duplicate costs no exchange call; the unique constraint still decides.
        if await CredentialRepository(read).exists(user_id, exchange.value):
            raise AppError(ErrorCode.CREDENTIAL_ALREADY_EXISTS)
        await read.close()  # hand the connection back before waiting on the exchange
        await self._validator.validate(exchange, keys)
        sealed = self._vault.seal(user_id, exchange.value, keys)
        try:
            row = await CredentialRepository(write).add(
                user_id, exchange.value, sealed, keys.last4, ip_whitelist, self._clock()
            )
        except DuplicateCredentialError:
            raise AppError(ErrorCode.CREDENTIAL_ALREADY_EXISTS) from None
        log.info("credential stored", extra={"user_id": user_id, "exchange": exchange.value})
        return Saved(row, whitelist_warnings(ip_whitelist, self._egress_ip))

    async def list(self, read: AsyncSession, user_id: str) -> Sequence[Credential]:
        """The user's credentials (callers mask the key from key_last4)."""
        return await CredentialRepository(read).list(user_id)

    async def get(self, read: AsyncSession, user_id: str, exchange: Exchange) -> Credential:
        """The user's credential for the exchange; CREDENTIAL_NOT_FOUND otherwise."""
        row = await CredentialRepository(read).get(user_id, exchange.value)
        if row is None:
            raise AppError(ErrorCode.CREDENTIAL_NOT_FOUND)
        return row

    async def update(
        self,
        read: AsyncSession,
        write: AsyncSession,
        user_id: str,
        exchange: Exchange,
        changes: Changes,
    ) -> Saved:
        """Merge the changes into the stored keys, re-validate the result, then store it re-sealed.

        New keys are announced (`credential.updated`) in the same transaction: the engine must stop using
        the old ones. A whitelist-only change announces nothing.
        """
        row = await self.get(read, user_id, exchange)
        if changes.api_key and changes.secret_key:
            # Both replaced: the stored ones are not needed (nor opened), so even a row whose
            # ciphertext no longer opens can be repaired by the user.
            keys = ExchangeKeys(changes.api_key, changes.secret_key)
        else:
            current = self._vault.open(user_id, exchange.value, row.api_key, row.secret_key)
            keys = ExchangeKeys(changes.api_key or current.api_key, changes.secret_key or current.secret_key)
        whitelist = changes.ip_whitelist if changes.ip_whitelist_set else row.ip_whitelist
        await read.close()  # hand the connection back before waiting on the exchange (row stays usable)
        await self._validator.validate(exchange, keys)
        now = self._clock()
        sealed = self._vault.seal(user_id, exchange.value, keys)
        repo = CredentialRepository(write)
        if not await repo.replace(row.id, user_id, sealed, keys.last4, whitelist, now):
            raise AppError(ErrorCode.CREDENTIAL_NOT_FOUND)  # deleted while we asked the exchange
        row.ip_whitelist, row.is_valid, row.last_validated_at, row.updated_at = whitelist, True, now, now
        if changes.api_key or changes.secret_key:
            event = CredentialEvent(
                user_id=user_id,
                exchange=exchange,
                reason=CredentialEventReason.UPDATED_BY_USER.value,
                credential_id=str(row.id),
            )
            await enqueue(write, OUTBOX, CREDENTIALS_EXCHANGE, CredentialEventType.UPDATED.value, event)
        log.info("credential updated", extra={"user_id": user_id, "exchange": exchange.value})
        return Saved(row, whitelist_warnings(whitelist, self._egress_ip))

    async def delete(self, write: AsyncSession, user_id: str, exchange: Exchange) -> None:
        """Delete the credential and, in the same transaction, announce it (the engine stops live bots)."""
        credential_id = await CredentialRepository(write).delete(user_id, exchange.value)
        if credential_id is None:
            raise AppError(ErrorCode.CREDENTIAL_NOT_FOUND)
        event = CredentialEvent(
            user_id=user_id,
            exchange=exchange,
            reason=CredentialEventReason.DELETED_BY_USER.value,
            credential_id=str(credential_id),
        )
        await enqueue(write, OUTBOX, CREDENTIALS_EXCHANGE, CredentialEventType.DELETED.value, event)
        log.info("credential deleted", extra={"user_id": user_id, "exchange": exchange.value})

    async def balance(
        self, read: AsyncSession, write: AsyncSession, user_id: str, exchange: Exchange
    ) -> QuoteBalance:
        """The user's free quote balance, read with the stored keys (which never leave this service).

        Keys the exchange refuses answer `is_valid=False` and are recorded as invalid (announced once);
        an exchange that cannot answer is EXCHANGE_API_ERROR; no credential is CREDENTIAL_NOT_FOUND.
        """
        row = await CredentialRepository(read).get(user_id, exchange.value)
        if row is None:
            raise AppError(ErrorCode.CREDENTIAL_NOT_FOUND)
        stored = StoredCredential.of(row)
        keys = self._vault.open(user_id, exchange.value, row.api_key, row.secret_key)
        await read.close()
        currency = quote_currency(exchange)
        try:
            info = await self._validator.fetch_account(exchange, keys)
        except ExchangeCallError as exc:
            if not is_rejection(exc):
                raise AppError(ErrorCode.EXCHANGE_API_ERROR, {"exchange": exchange.value}) from None
            await record_check(write, stored, Outcome.REJECTED, self._clock())
            return QuoteBalance(False, currency, Decimal(0), Decimal(0))
        await record_check(write, stored, Outcome.VALID, self._clock())
        return QuoteBalance(True, info.currency, info.balance, info.locked)

    async def keys_for(self, read: AsyncSession, user_id: str, exchange: Exchange) -> ExchangeKeys:
        """A user's plaintext keys for a trusted caller; CREDENTIAL_NOT_FOUND when there are none."""
        row = await CredentialRepository(read).get(user_id, exchange.value)
        if row is None:
            raise AppError(ErrorCode.CREDENTIAL_NOT_FOUND)
        return self._vault.open(user_id, exchange.value, row.api_key, row.secret_key)

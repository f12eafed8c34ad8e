"""Periodic re-validation of stored keys: `isValid`/`lastValidatedAt` kept current.

Keys the exchange now refuses are marked invalid and, in the same transaction, a `credential.invalidated`
event is written to the outbox (once, on the transition), so the bots service puts that user's running
live bots of that exchange into `error`. An exchange that cannot answer changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.contracts.credentials import (
    CREDENTIALS_EXCHANGE,
    CredentialEvent,
    CredentialEventReason,
    CredentialEventType,
)
from common.crypto import DecryptionError
from common.errortracking import background_task
from common.exchanges import Exchange
from common.outbox import OutboxRelay, enqueue
from credentials.models import OUTBOX, Credential, utc_now
from credentials.validation import ExchangeValidator, Outcome
from credentials.vault import CredentialVault

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """The stored (sealed) state of a credential when it was read for a check."""

    id: uuid.UUID
    user_id: str
    exchange: str
    api_key: str
    secret_key: str

    @classmethod
    def of(cls, row: Credential) -> StoredCredential:
        """Snapshot an ORM row."""
        return cls(row.id, row.user_id, row.exchange, row.api_key, row.secret_key)


async def record_check(
    session: AsyncSession, stored: StoredCredential, outcome: Outcome, now: datetime
) -> bool:
    """Write what a check of the exchange found (in the caller's transaction); True when it invalidated.

    Only the keys that were checked are touched: a PUT that replaced them meanwhile is not overwritten.
    A VALID -> REJECTED transition also enqueues `credential.invalidated`, once.
    """
    same_keys = (
        Credential.id == stored.id,
        Credential.api_key == stored.api_key,
        Credential.secret_key == stored.secret_key,
    )
    if outcome is Outcome.UNKNOWN:
        return False
    if outcome is Outcome.VALID:
        await session.execute(
            update(Credential).where(*same_keys).values(is_valid=True, last_validated_at=now)
        )
        return False
    flipped = await session.execute(
        update(Credential)
        .where(*same_keys, Credential.is_valid.is_(True))
        .values(is_valid=False, last_validated_at=now)
    )
    if not getattr(flipped, "rowcount", 0):
        await session.execute(update(Credential).where(*same_keys).values(last_validated_at=now))
        return False
    event = CredentialEvent(
        user_id=stored.user_id,
        exchange=Exchange(stored.exchange),
        reason=CredentialEventReason.REJECTED_BY_EXCHANGE.value,
        credential_id=str(stored.id),
    )
    await enqueue(session, OUTBOX, CREDENTIALS_EXCHANGE, CredentialEventType.INVALIDATED.value, event)
    log.warning(
        "stored credential rejected by the exchange",
        extra={"user_id": stored.user_id, "exchange": stored.exchange},
    )
    return True


@dataclass
class RevalidationReport:
    """What one pass did."""

    checked: int = 0
    valid: int = 0
    invalidated: int = 0
    unknown: int = 0
    failed: int = 0


class Revalidator:
    """Re-validates the credentials not validated within `interval`, a bounded number at a time."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        vault: CredentialVault,
        validator: ExchangeValidator,
        relay: OutboxRelay | None,
        *,
        interval: timedelta,
        concurrency: int = 4,
        batch_size: int = 200,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._factory = session_factory
        self._vault = vault
        self._validator = validator
        self._relay = relay
        self._interval = interval
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run passes in the background, each after a jittered pause."""
        if self._task is None and self._interval.total_seconds() > 0:
            self._task = background_task(self._run(), name="credentials-revalidation")

    async def stop(self) -> None:
        """Stop the background passes."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _pause(self) -> float:
        # A pass every sixth of the interval, jittered so that replicas and restarts do not line up:
        # each row is re-checked between one and ~1.2 intervals after its last validation.
        base = max(1.0, self._interval.total_seconds() / 6)
        return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._pause())
            try:
                report = await self.run_once()
                if report.checked:
                    log.info("credentials re-validated", extra=report.__dict__)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("credential re-validation pass failed: %s", type(exc).__name__)

    async def run_once(self) -> RevalidationReport:
        """One pass over the due credentials (oldest validation first); tests call this directly."""
        now = self._clock()
        due = await self._due(now - self._interval)
        report = RevalidationReport()
        gate = asyncio.Semaphore(self._concurrency)

        async def one(row: StoredCredential) -> None:
            async with gate:
                await self._revalidate(row, report)

        await asyncio.gather(*(one(row) for row in due))
        if report.invalidated and self._relay is not None:
            self._relay.nudge()
        return report

    async def _due(self, cutoff: datetime) -> list[StoredCredential]:
        query = (
            select(
                Credential.id,
                Credential.user_id,
                Credential.exchange,
                Credential.api_key,
                Credential.secret_key,
            )
            .where(or_(Credential.last_validated_at.is_(None), Credential.last_validated_at < cutoff))
            .order_by(Credential.last_validated_at.nulls_first(), Credential.id)
            .limit(self._batch_size)
        )
        async with self._factory() as session:
            rows = (await session.execute(query)).all()
        return [StoredCredential(r.id, r.user_id, r.exchange, r.api_key, r.secret_key) for r in rows]

    async def _revalidate(self, row: StoredCredential, report: RevalidationReport) -> None:
        report.checked += 1
        try:
            exchange = Exchange(row.exchange)
            keys = self._vault.open(row.user_id, row.exchange, row.api_key, row.secret_key)
        except (DecryptionError, ValueError):
            report.failed += 1
            log.error(
                "stored credential cannot be opened",
                extra={"user_id": row.user_id, "exchange": row.exchange},
            )
            return
        outcome = await self._validator.check(exchange, keys)
        del keys
        if outcome is Outcome.UNKNOWN:
            report.unknown += 1
            return
        async with self._factory() as session, session.begin():
            if await record_check(session, row, outcome, self._clock()):
                report.invalidated += 1
            elif outcome is Outcome.VALID:
                report.valid += 1

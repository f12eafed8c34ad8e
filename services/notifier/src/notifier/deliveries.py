"""The delivery worker: claims due deliveries, attempts them, and records how each attempt went.

A delivery row exists before its first attempt (written with the event's inbox row). A claim, in its own
transaction, counts the attempt and holds the row until the attempt's time bound has passed
(`next_attempt_at`), so a process that dies mid-attempt leaves it to be tried again later under the same id;
the outcome is written only while the row is still that claim's (its attempt count unchanged). A 2xx makes it
`succeeded` for good; a failure is retried after a jittered exponential backoff (common.retry) until
`DELIVERY_MAX_ATTEMPTS`, then it is `dead`; a failure no retry can mend (a refused target, a redirect, a
removed channel) is `failed` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.crypto import DecryptionError, KeyRing
from common.errortracking import background_task
from common.retry import Backoff, Jitter
from notifier.channels import OpenChannel, open_row
from notifier.messages import text, webhook_body
from notifier.models import Channel, Delivery, DeliveryStatus
from notifier.senders import Outcome, WebhookSender, send_apprise

log = logging.getLogger(__name__)

# Beyond an attempt's own time bound before its claim lapses (scheduling, the database write).
CLAIM_MARGIN_SECONDS = 5.0


class DeliveryWorker:
    """Sends due deliveries, `concurrency` at a time, woken by new ones or every `poll` seconds."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        ring: KeyRing,
        webhooks: WebhookSender,
        *,
        max_attempts: int,
        backoff: Backoff,
        timeout: float,
        poll: float,
        concurrency: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._factory = session_factory
        self._ring = ring
        self._webhooks = webhooks
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._timeout = timeout
        self._poll = poll
        self._concurrency = concurrency
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def backoff_for(base: float, cap: float) -> Backoff:
        """The retry pace: exponential, half of each delay random (receivers that failed together spread out)."""
        return Backoff(base=base, cap=cap, jitter=Jitter.HALF)

    def wake(self) -> None:
        """Look for due deliveries now (new ones were just committed)."""
        self._wake.set()

    def start(self) -> None:
        """Run the loop in the background."""
        self._task = background_task(self._loop(), name="notifier-deliveries")

    async def stop(self) -> None:
        """Stop the loop (an attempt in flight is abandoned; its claim lapses and it is tried again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                sent = await self.run_due()
            except Exception:
                log.exception("delivery round failed")
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()

    async def run_due(self) -> int:
        """Claim up to `concurrency` due deliveries and attempt them; how many were attempted."""
        claimed = await self.claim()
        await asyncio.gather(*(self._attempt(*item) for item in claimed))
        return len(claimed)

    async def claim(self) -> list[tuple[Delivery, OpenChannel | None, str | None]]:
        """Due deliveries, each with its attempt counted and held until its time bound has passed (with its
        channel opened, or why it cannot be)."""
        now = self._clock()
        lease = now + timedelta(seconds=self._timeout + CLAIM_MARGIN_SECONDS)
        async with self._factory() as session:
            rows = (
                (
                    await session.execute(
                        select(Delivery)
                        .where(
                            Delivery.status == DeliveryStatus.PENDING.value, Delivery.next_attempt_at <= now
                        )
                        .order_by(Delivery.next_attempt_at)
                        .limit(self._concurrency)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not rows:
                return []
            channels = {
                c.id: c
                for c in (
                    await session.execute(select(Channel).where(Channel.id.in_({r.channel_id for r in rows})))
                ).scalars()
            }
            out: list[tuple[Delivery, OpenChannel | None, str | None]] = []
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = lease
                channel, problem = None, None
                stored = channels.get(row.channel_id)
                if stored is None:
                    problem = "the channel was removed"
                else:
                    try:
                        channel = open_row(self._ring, stored)
                    except DecryptionError:
                        problem = "the channel's secret cannot be opened (encryption key changed?)"
                out.append((row, channel, problem))
            await session.commit()
            return out

    async def _attempt(self, row: Delivery, channel: OpenChannel | None, problem: str | None) -> None:
        outcome = Outcome(False, problem, retry=False) if channel is None else await self._send(row, channel)
        await self._record(row.id, row.attempts, outcome)

    async def _send(self, row: Delivery, channel: OpenChannel) -> Outcome:
        try:
            if channel.type == "webhook":
                assert channel.url is not None
                body = webhook_body(str(row.id), row.payload)
                return await self._webhooks.send(channel.url, channel.secret, str(row.id), row.event, body)
            url = channel.apprise_url
            if url is None:
                return Outcome(False, "the channel has no URL", retry=False)
            title, message = text(row.payload)
            return await send_apprise(url, title, message, self._timeout)
        except Exception as exc:  # a sender's bug must not stop the worker; the delivery is retried
            log.exception("delivery %s: attempt failed unexpectedly", row.id)
            return Outcome(False, f"internal error: {type(exc).__name__}")

    async def _record(self, delivery_id: uuid.UUID, attempt: int, outcome: Outcome) -> None:
        now = self._clock()
        values: dict[str, object]
        if outcome.delivered:
            values = {
                "status": DeliveryStatus.SUCCEEDED.value,
                "delivered_at": now,
                "next_attempt_at": None,
                "last_error": None,
            }
        elif not outcome.retry:
            values = {
                "status": DeliveryStatus.FAILED.value,
                "next_attempt_at": None,
                "last_error": outcome.error,
            }
        elif attempt >= self._max_attempts:
            values = {
                "status": DeliveryStatus.DEAD.value,
                "next_attempt_at": None,
                "last_error": outcome.error,
            }
            log.warning("delivery %s dead after %d attempts: %s", delivery_id, attempt, outcome.error)
        else:
            delay = self._backoff.delay(attempt)
            values = {"next_attempt_at": now + timedelta(seconds=delay), "last_error": outcome.error}
        async with self._factory() as session:
            await session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.attempts == attempt,
                    Delivery.status == DeliveryStatus.PENDING.value,
                )
                .values(**values)
            )
            await session.commit()

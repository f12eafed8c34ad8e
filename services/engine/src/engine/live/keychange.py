"""Credential events (exchange `credentials`): the engine stops using keys a user replaced or deleted.

`credential.deleted`: every live bot of that user on that exchange is halted (`stopReason:
"credentialRemoved"`), its open orders are cancelled with the client the engine still holds (the keys are
gone from the credentials service, so that client is the last way to reach them), and only then are the
client and its private stream dropped. Orders that could not be cancelled — no client held any more (e.g.
after a restart), or the exchange refused or did not answer — are abandoned: the core forgets them, their
rows keep their last known status, and the bot's `errorMessage` lists them for the user to cancel by hand.

`credential.updated`: the client and stream are dropped, so the next call fetches the new keys. When bots
of that user still rest orders, the new keys are first asked about one of them: if they cannot see it, the
keys belong to another account, and those bots are halted exactly as on `deleted` (their orders live on the
old account, which only the old client can reach) with a note saying why.

Each message is handled once: every bot's halt is committed with an inbox row of its own (a redelivery
after a crash skips the bots already halted and finishes the cancels), and the message's own inbox row is
written last.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.contracts import queues
from common.contracts.credentials import CredentialEvent, CredentialEventType
from common.contracts.envelope import Envelope
from common.exchanges import ExchangeCallError, TransientExchangeError, call
from engine.live.broker import LiveBroker
from engine.live.recovery import ClientKey, client_key
from engine.persistence import tables, writes
from engine.scheduling.shard import Shard
from engine.work import AbandonWork, KeysGoneWork
from gridcore import Phase

log = logging.getLogger(__name__)

CREDENTIAL_EVENTS_QUEUE = queues.ENGINE_CREDENTIAL_EVENTS
CREDENTIAL_EVENT_KEYS = (CredentialEventType.UPDATED.value, CredentialEventType.DELETED.value)
_PARALLEL_CANCELS = 8


def moved_note(exchange: str) -> str:
    """What a user is told when new keys of another account stopped their bot."""
    return (
        f"The API keys for {exchange} were replaced with keys of another account while the bot was running; "
        "its orders on the previous account were cancelled. Start it again to trade with the new keys."
    )


class CredentialEventConsumer:
    """Applies `credential.updated` / `credential.deleted` to this engine's clients and live bots."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        broker: LiveBroker,
        shard_for: Callable[[uuid.UUID], Shard],
        *,
        owns: Callable[[uuid.UUID], Awaitable[bool]] | None = None,
        replica: str = "",
    ) -> None:
        self._factory = factory
        self._broker = broker
        self._shard_for = shard_for
        # Every replica gets the event and halts only the bots it owns; each records the event as its own.
        self._owns = owns
        self._consumer = f"{CREDENTIAL_EVENTS_QUEUE}:{replica}"[:64] if replica else CREDENTIAL_EVENTS_QUEUE

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler (raising asks for a redelivery)."""
        try:
            kind = CredentialEventType(envelope.type)
            event = envelope.payload_as(CredentialEvent)
            user = uuid.UUID(event.user_id)
        except (ValueError, ValidationError):
            log.warning("ignoring credentials message %s (%s)", envelope.message_id, envelope.type)
            return
        if kind is CredentialEventType.INVALIDATED:
            return  # the bots service's to handle
        key: ClientKey = (event.user_id, event.exchange)
        async with self._factory() as session:
            if await _inbox_has(session, self._consumer, envelope.message_id):
                return  # handled whole before: its bots were stopped and the old client dropped
            bot_ids = await _live_bot_ids(session, user, event.exchange.value)
        if self._owns is not None:
            bot_ids = [bot_id for bot_id in bot_ids if await self._owns(bot_id)]
        note: str | None = None
        if kind is CredentialEventType.UPDATED:
            note = moved_note(event.exchange.value)
            bot_ids = bot_ids if await self._account_changed(key, bot_ids) else []
        if bot_ids:
            log.info(
                "%s: stopping %d live bot(s) of user %s on %s",
                kind.value,
                len(bot_ids),
                event.user_id,
                event.exchange.value,
            )
            await self._halt(envelope.message_id, key, bot_ids, note)
        await self._broker.drop_client(key)
        await self._reconnect(key)
        async with self._factory() as session, session.begin():
            await writes.claim_inbox(session, self._consumer, [envelope.message_id])

    async def _account_changed(self, key: ClientKey, bot_ids: list[uuid.UUID]) -> bool:
        """Whether the new keys are another account's: they cannot see an order the bots rest (asked once)."""
        # Read only (the shards own the handles); a bot with an order open is always loaded.
        found = (self._broker.registry.handles.get(bot_id) for bot_id in bot_ids)
        bots = [handle for handle in found if handle is not None]
        acked = [
            (handle, ref)
            for handle in bots
            for ref in handle.orders.values()
            if ref.exchange_order_id is not None and handle.core.open_order(ref.client_order_id)
        ]
        if not acked:
            # Nothing to ask about: with orders still unconfirmed, assume the worst (they may be on the old
            # account); with no order at all, the old account holds nothing of theirs.
            return any(handle.orders for handle in bots)
        handle, ref = acked[0]
        try:
            client = await self._broker.fresh_client(key)
        except ExchangeCallError as exc:
            if isinstance(exc, TransientExchangeError):
                raise  # the credentials service did not answer: try the message again later
            return True  # no keys any more (deleted meanwhile): nothing can reach the old orders but the old client
        try:
            seen = await call(
                client.fetch, handle.row.ticker, ref.client_order_id, ref.exchange_order_id, attempts=3
            )
        except ExchangeCallError as exc:
            log.warning(
                "new keys of user %s could not be checked (%s): stopping their bots", key[0], exc.source
            )
            return True
        finally:
            await client.close()
        return seen is None

    async def _halt(
        self, message_id: str, key: ClientKey, bot_ids: list[uuid.UUID], note: str | None
    ) -> None:
        """Halt the bots, cancel their orders with the held client, abandon what stays open."""
        inbox = message_id[:200]
        await _all(
            self._shard_for(bot_id).submit(
                KeysGoneWork(bot_id=bot_id, inbox=(CREDENTIAL_EVENTS_QUEUE, f"{inbox}:{bot_id}"), note=note)
            )
            for bot_id in bot_ids
        )
        client = self._broker.held_client(key)
        if client is not None:
            limit = asyncio.Semaphore(_PARALLEL_CANCELS)

            async def cancel(bot_id: uuid.UUID, cid: str) -> None:
                async with limit:
                    try:
                        await self._broker.cancel(bot_id, cid, client=client)
                    except ExchangeCallError as exc:
                        log.warning("order %s could not be cancelled with the old keys: %s", cid, exc.source)

            await asyncio.gather(*(cancel(bot_id, cid) for bot_id, cid in self._open(bot_ids)))
        await _all(
            self._shard_for(bot_id).submit(AbandonWork(bot_id=bot_id))
            for bot_id in {bot_id for bot_id, _ in self._open(bot_ids)}
        )

    async def _reconnect(self, key: ClientKey) -> None:
        """Bots that trade on (same account): a client and private stream on the new keys at once.

        Otherwise nothing would hear their fills until their next exchange call; the new stream's first
        connection reconciles them, which finds whatever happened meanwhile.
        """
        for handle in list(self._broker.registry.handles.values()):
            if handle.is_paper or client_key(handle) != key or not handle.core.open_orders():
                continue
            try:
                await self._broker.client(handle)
            except ExchangeCallError as exc:
                log.warning("no client on the new keys of user %s: %s", key[0], exc.source or exc)
            return

    def _open(self, bot_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
        """(bot, client order id) of every order the halting bots still have open."""
        found: list[tuple[uuid.UUID, str]] = []
        for bot_id in bot_ids:
            handle = self._broker.registry.handles.get(bot_id)
            if handle is None or handle.core.state.phase is not Phase.HALTING:
                continue
            found.extend((bot_id, order.client_order_id) for _, order in handle.core.open_orders())
        return found


async def _all(futures: Iterable[asyncio.Future[None]]) -> None:
    """Wait for every future; the first failure is raised once all have ended."""
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _live_bot_ids(session: AsyncSession, user_id: uuid.UUID, exchange: str) -> list[uuid.UUID]:
    bots, orders = tables.BOTS, tables.ORDERS
    mine = (bots.c.user_id == user_id) & (bots.c.exchange == exchange) & (bots.c.mode == "live")
    wanted = select(bots.c.id).where(
        mine, bots.c.deleted_at.is_(None), (bots.c.status == "running") | bots.c.stop_command_id.is_not(None)
    )
    with_orders = (
        select(orders.c.bot_id)
        .join(bots, bots.c.id == orders.c.bot_id)
        .where(mine, orders.c.status.in_(("new", "open")))
        .distinct()
    )
    ids = set((await session.execute(wanted)).scalars())
    ids.update((await session.execute(with_orders)).scalars())
    return sorted(ids)


async def _inbox_has(session: AsyncSession, consumer: str, message_id: str) -> bool:
    inbox = tables.INBOX
    found = await session.execute(
        select(inbox.c.id).where(inbox.c.consumer == consumer, inbox.c.message_id == message_id)
    )
    return found.first() is not None

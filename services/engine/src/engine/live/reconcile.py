"""Reconciliation of a live bot's orders with its exchange: at start, on stream reconnects, periodically.

For each order the core has open: one the exchange lists as open with the fills the core knows is kept;
anything else is checked by its id (filled while we were away → fills folded once; gone → closed, so the
slot places a new order; never seen (`new`) → placed now under the same id; a cancel that was under way →
sent again). Open orders at the exchange that carry the bot's client-order-id prefix but that the core does
not know are adopted when they fit their slot, and canceled otherwise.

A reconciliation that ends on a transient error leaves the bot owed one (`recovery.py`): it is tried again
within seconds, not at the next periodic round. Bots whose keys stand refused are left out.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from common.exchanges import ExchangeCallError, TransientExchangeError, call
from engine.live.client import ExchangeOrder
from engine.live.ports import Broker
from engine.live.recovery import Recovery, client_key, keys_refused
from engine.work import AdoptWork
from gridcore import bot_prefix

log = logging.getLogger(__name__)

_PARALLEL = 8


class Reconciler:
    """Brings live bots in line with their exchanges."""

    def __init__(self, broker: Broker, recovery: Recovery) -> None:
        self._broker = broker
        self._recovery = recovery
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}

    async def reconcile_all(self) -> None:
        """Every live bot with an order open or a stop under way, whose keys are not refused."""
        await self.reconcile_bots(list(self._broker.registry.handles))

    async def reconcile_bots(self, bot_ids: Iterable[uuid.UUID]) -> None:
        """Those of these bots that are live with an order open or a stop under way, and not left alone."""
        recovery = self._recovery
        handles = self._broker.registry.handles
        ids = [
            bot_id
            for bot_id in bot_ids
            if (handle := handles.get(bot_id)) is not None
            and not handle.is_paper
            and handle.core.open_orders()
            and not recovery.left_alone(handle)
        ]
        limit = asyncio.Semaphore(_PARALLEL)

        async def one(bot_id: uuid.UUID) -> None:
            async with limit:
                if not await self.reconcile(bot_id):
                    recovery.owe(bot_id)

        await asyncio.gather(*(one(bot_id) for bot_id in ids))

    async def reconcile(self, bot_id: uuid.UUID) -> bool:
        """One bot, after any reconciliation of it already running; False when it ended on a transient error."""
        async with self._locks.setdefault(bot_id, asyncio.Lock()):
            self._broker.metrics.reconciliations += 1
            try:
                await self._reconcile(bot_id)
            except ExchangeCallError as exc:
                self._broker.metrics.reconciliations_incomplete += 1
                log.warning(
                    "reconciliation of bot %s incomplete: %s", bot_id, exc.source or type(exc).__name__
                )
                handle = self._broker.registry.handles.get(bot_id)
                if handle is not None and keys_refused(exc):
                    self._recovery.refused(client_key(handle), exc)
                return not isinstance(exc, TransientExchangeError)
        return True

    async def _reconcile(self, bot_id: uuid.UUID) -> None:
        broker = self._broker
        handle = broker.registry.handles.get(bot_id)
        if handle is None or handle.is_paper:
            return
        client = await broker.client(handle)
        listed = await call(client.open_orders, handle.row.ticker, attempts=broker.settings.exchange_attempts)
        open_at_exchange = {order.client_order_id: order for order in listed if order.client_order_id}
        for _, order in handle.core.open_orders():
            cid = order.client_order_id
            ref = handle.orders.get(cid)
            ex = open_at_exchange.get(cid)
            if order.cancel_requested:
                await broker.cancel(bot_id, cid)
            elif (
                ex is not None
                and ref is not None
                and ref.status == "open"
                and ex.filled_qty == order.filled_qty
            ):
                continue  # resting as the core believes
            else:
                await broker.check(bot_id, cid)
        prefix = bot_prefix(str(bot_id)) + "-"
        for cid, ex in open_at_exchange.items():
            handle = broker.registry.handles.get(bot_id)
            if handle is None or not cid.startswith(prefix) or handle.core.open_order(cid) is not None:
                continue
            await self._adopt_or_cancel(bot_id, cid, ex)

    async def _adopt_or_cancel(self, bot_id: uuid.UUID, cid: str, ex: ExchangeOrder) -> None:
        broker = self._broker
        async with broker.lock(cid):
            work = AdoptWork(
                bot_id=bot_id,
                client_order_id=cid,
                exchange_order_id=ex.exchange_order_id,
                side=ex.side,
                price=ex.price,
                qty=ex.qty,
            )
            await broker.submit(work)
            handle = broker.registry.handles.get(bot_id)
            if handle is None:
                return
            adopted = handle.core.open_order(cid) is not None
            if not adopted:
                log.warning("bot %s: order %s at the exchange fits no slot; canceling it", bot_id, cid)
                client = await broker.client(handle)
                await call(client.cancel, handle.row.ticker, cid, ex.exchange_order_id, attempts=3)
                return
        broker.metrics.adoptions += 1
        log.warning("bot %s adopted order %s found open at the exchange", bot_id, cid)
        await broker.check(bot_id, cid)  # its fills so far, like any order's

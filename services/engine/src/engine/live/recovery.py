"""Recovery from the exchange's faults: owed reconciliations, crossing checks, keys the exchange refuses.

A bot is *owed* a reconciliation when something may have happened that nobody heard: its private stream
(re)connected after a gap, or a check, cancel, placement or reconciliation of it ended on a transient error
(5xx, 429, timeout, a spent call budget). An owed bot is reconciled again soon (a short jittered backoff,
`CATCH_UP_MAX_DELAY` at most between tries) until one reconciliation completes, so a fill made during a
fault is recorded seconds after the fault ends, not at the next periodic reconciliation. Until then its
stream does not count as covering it, so ticks crossing its orders check them at the exchange.

A crossing check asks once (no retries under the order's lock, where a fault's backoff would hold back every
later check), and a failed one does not use up `ORDER_CHECK_MIN_INTERVAL_SECONDS`: the next crossing tick
asks again after `CHECK_RETRY_GAP` at most, so the first one after the fault finds the fill.

Keys the exchange refuses (or the credentials service no longer has) are *refused* until they change (a
key event drops the client) or an order placed with them is accepted. A halting bot whose cancels are refused
(after fetching the keys again once) has its orders abandoned, listed for the user as when keys are deleted,
so its halt ends instead of being retried for ever; and a bot in error or halting on refused keys is left
alone by the periodic and owed reconciliations and by crossing checks. A running bot is still reconciled (the
same key may be enabled again at the exchange).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from common.exchanges import (
    ErrorKind,
    Exchange,
    ExchangeCallError,
    PermanentExchangeError,
    TransientExchangeError,
)
from common.retry import Backoff, Jitter
from engine.live.ports import Broker
from engine.model import BotHandle
from engine.work import AbandonWork
from gridcore import Phase, Tick

log = logging.getLogger(__name__)

CATCH_UP_MAX_DELAY = 2.0
CATCH_UP = Backoff(base=0.5, cap=CATCH_UP_MAX_DELAY, jitter=Jitter.HALF)
# After a failed crossing check, the next crossing tick asks no sooner than this (nor than the interval).
CHECK_RETRY_GAP = 0.5
_REFUSED_KINDS = (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION)


ClientKey = tuple[str, Exchange]


def client_key(handle: BotHandle) -> ClientKey:
    """Whose keys on which exchange the bot trades with."""
    return (str(handle.row.user_id), Exchange(handle.row.exchange))


def keys_refused(error: ExchangeCallError) -> bool:
    """The exchange (or the credentials service) refused the keys themselves."""
    return isinstance(error, PermanentExchangeError) and error.kind in _REFUSED_KINDS


class Recovery:
    """Owed reconciliations, crossing checks and refused keys of one live broker."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._owed: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Owed again while a reconciliation of theirs was under way (it may have listed orders too early).
        self._again: set[uuid.UUID] = set()
        self._refused: set[ClientKey] = set()
        self._last_check: dict[str, float] = {}
        self._checking: set[str] = set()

    async def close(self) -> None:
        """End every catch-up in progress."""
        tasks = list(self._owed.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._owed.clear()

    # --- keys ---------------------------------------------------------------------------------------------

    def left_alone(self, handle: BotHandle) -> bool:
        """A bot in error (or halting) on refused keys: nothing but a user's action calls the exchange for it.

        A running bot is still reconciled: its keys may work again (the same key re-enabled).
        """
        return handle.core.state.phase is not Phase.RUNNING and client_key(handle) in self._refused

    def refused(self, key: ClientKey, error: ExchangeCallError) -> None:
        """The keys were refused: leave their bots alone until the keys change or an order is accepted."""
        if key not in self._refused:
            log.warning(
                "keys of user %s on %s refused (%s): their bots are left alone until the keys change",
                key[0],
                key[1].value,
                error.source or type(error).__name__,
            )
        self._refused.add(key)

    def accepted(self, key: ClientKey) -> None:
        """The keys changed, or the exchange took an order with them."""
        self._refused.discard(key)

    # --- owed reconciliations ------------------------------------------------------------------------------

    def owes(self, bot_id: uuid.UUID) -> bool:
        """True while the bot waits for a reconciliation that completes."""
        return bot_id in self._owed

    def owe(self, bot_id: uuid.UUID) -> None:
        """Reconcile the bot soon, and again after each incomplete try, until one completes."""
        if bot_id in self._owed:
            self._again.add(bot_id)
            return
        self._owed[bot_id] = asyncio.create_task(self._catch_up(bot_id), name=f"catch-up:{bot_id}")

    async def _catch_up(self, bot_id: uuid.UUID) -> None:
        broker = self._broker
        attempt = 0
        try:
            while True:
                handle = broker.registry.handles.get(bot_id)
                if (
                    handle is None
                    or handle.is_paper
                    or not handle.core.open_orders()
                    or self.left_alone(handle)
                ):
                    return
                self._again.discard(bot_id)
                if await broker.reconciler.reconcile(bot_id):
                    if bot_id in self._again:
                        continue
                    return
                attempt += 1
                await asyncio.sleep(CATCH_UP.delay(attempt))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("catching up with bot %s failed", bot_id)
        finally:
            self._owed.pop(bot_id, None)
            self._again.discard(bot_id)

    def failed(self, handle: BotHandle, error: ExchangeCallError) -> None:
        """An exchange call about the bot failed: owe it a reconciliation, or note refused keys."""
        if isinstance(error, TransientExchangeError):
            self.owe(handle.id)
        elif keys_refused(error):
            self.refused(client_key(handle), error)

    async def abandon(self, handle: BotHandle, error: ExchangeCallError) -> None:
        """A halting bot's cancel was refused for its keys: forget its orders so that the halt ends."""
        self.refused(client_key(handle), error)
        log.warning("bot %s: its orders cannot be cancelled with refused keys; abandoning them", handle.id)
        await self._broker.submit(AbandonWork(bot_id=handle.id))

    # --- crossing checks -----------------------------------------------------------------------------------

    def on_crossing(self, handle: BotHandle, tick: Tick) -> None:
        """A tick crossed the bot's order prices: unless its stream covers it, ask the exchange about them."""
        broker = self._broker
        if broker.stream_up(handle) or self.left_alone(handle):
            return
        core, now = handle.core, time.monotonic()
        interval = broker.settings.order_check_min_interval_seconds
        for slot in core.buys_at_or_above(tick.low) + core.sells_at_or_below(tick.high):
            order = core.state.slots[slot].order
            if order is None:
                continue
            cid = order.client_order_id
            last = self._last_check.get(cid)
            if cid in self._checking or (last is not None and now - last < interval):
                continue
            self._last_check[cid] = now
            self._checking.add(cid)
            broker.spawn(self._crossing_check(handle, cid), f"check:{cid}")

    async def _crossing_check(self, handle: BotHandle, cid: str) -> None:
        try:
            await self._broker.check(handle.id, cid, attempts=1)
        except ExchangeCallError as exc:
            # A failed check does not use up the interval: a crossing tick asks again after a short gap (the
            # first one after the fault at once); meanwhile the bot is reconciled until one succeeds.
            interval = self._broker.settings.order_check_min_interval_seconds
            self._last_check[cid] = time.monotonic() - interval + min(interval, CHECK_RETRY_GAP)
            log.info("check of order %s failed (%s)", cid, exc.source or type(exc).__name__)
            self.failed(handle, exc)
        finally:
            self._checking.discard(cid)
        if handle.core.open_order(cid) is None:
            self._last_check.pop(cid, None)

"""Price ticks (exchange `market`, a transient queue): route each tick to the bots whose prices it crosses.

One worker per ticker keeps ticks in order: ticks that arrive while it is busy are folded into one (lowest
low, highest high, newest last), so no crossing is lost and a burst costs one pass over the index. A tick
is acked as soon as it is in its ticker's pending fold: ticks are transient (their queue dies with the
connection, and a newer tick supersedes them), and holding acks while bots commit would only let them
queue up in the broker, where nothing folds them and every one adds to the delay of the next. Within one
publisher epoch a tick whose `seq` is not newer than the last one handled is a redelivery and is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from pydantic import ValidationError

from common.contracts.envelope import Envelope
from common.contracts.market import PriceTick
from engine.metrics import Metrics
from engine.model import BotHandle
from engine.scheduling.index import TickerKey
from engine.scheduling.registry import Registry
from engine.scheduling.shard import Shard
from engine.work import TickWork
from gridcore import Tick

log = logging.getLogger(__name__)


class CrossingChecks(Protocol):
    """Live bots: a tick crossing an open order's price asks the exchange about that order."""

    def on_crossing(self, handle: BotHandle, tick: Tick) -> None:
        """Schedule status checks of the bot's orders the tick crossed."""


@dataclass
class _Fold:
    """Ticks of one ticker not yet processed, folded into one."""

    low: Decimal
    high: Decimal
    last: Decimal
    published_at: datetime
    count: int = 1

    def add(self, tick: PriceTick) -> None:
        self.low, self.high, self.last = min(self.low, tick.low), max(self.high, tick.high), tick.last
        self.published_at = min(self.published_at, tick.published_at)
        self.count += 1


@dataclass
class _Feed:
    key: TickerKey
    fold: _Fold | None = None
    epoch: str | None = None
    seq: int = 0
    last: Decimal | None = None
    task: asyncio.Task[None] | None = None


class TickRouter:
    """The handler of the tick queue."""

    def __init__(
        self,
        registry: Registry,
        shard_for: Callable[[uuid.UUID], Shard],
        metrics: Metrics,
        checks: CrossingChecks | None = None,
        owns: Callable[[uuid.UUID], bool] | None = None,
    ) -> None:
        self._registry = registry
        # Bots of a partition still being taken over (loaded, reconciled) get no tick until that is done.
        self._owns = owns
        self._shard_for = shard_for
        self._metrics = metrics
        self.checks = checks
        self._feeds: dict[TickerKey, _Feed] = {}

    async def handle(self, envelope: Envelope) -> None:
        """Bus handler: returns once the tick is folded into its ticker's pending tick (see the module doc)."""
        try:
            tick = envelope.payload_as(PriceTick)
        except ValidationError:
            log.warning("unreadable price tick %s", envelope.message_id)
            self._metrics.ticks_dropped += 1
            return
        self._metrics.ticks += 1
        if not (0 < tick.low <= tick.last <= tick.high):
            log.warning("price tick %s out of order (low/last/high); ignored", envelope.message_id)
            self._metrics.ticks_dropped += 1
            return
        key = (tick.exchange.value, tick.ticker)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(key)
        if tick.epoch == feed.epoch and tick.seq <= feed.seq:
            return  # a redelivery (or reordering) of a tick already taken
        if tick.epoch != feed.epoch:
            feed.epoch, feed.seq = tick.epoch, 0
        feed.seq = tick.seq
        if feed.fold is None:
            feed.fold = _Fold(tick.low, tick.high, tick.last, tick.published_at)
        else:
            feed.fold.add(tick)
        if feed.task is None or feed.task.done():
            feed.task = asyncio.create_task(self._drain(feed), name=f"ticks:{key[0]}:{key[1]}")

    async def drain(self) -> None:
        """Wait for every ticker worker to finish what it has (tests, shutdown)."""
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, feed: _Feed) -> None:
        while feed.fold is not None:
            fold, feed.fold = feed.fold, None
            try:
                await self._process(feed, fold)
            except Exception as exc:
                log.warning("ticks of %s:%s failed: %r", feed.key[0], feed.key[1], exc)

    async def _process(self, feed: _Feed, fold: _Fold) -> None:
        closed_up = fold.last > feed.last if feed.last is not None else False
        merged = Tick(last=fold.last, high=fold.high, low=fold.low, closed_up=closed_up)
        feed.last = fold.last
        self._metrics.tick_batches += 1
        registry = self._registry
        keys = registry.index.crossed(feed.key, merged.low, merged.high)
        crossed = [uuid.UUID(int=key) for key in keys]
        waiting = registry.index.waiting(feed.key).difference(crossed)
        futures: list[asyncio.Future[None]] = []
        for bot_id in crossed + list(waiting):
            handle = registry.handles.get(bot_id)
            if handle is None or (self._owns is not None and not self._owns(bot_id)):
                continue
            if handle.is_paper:
                if not handle.stale and not _paper_needs(handle, merged):
                    continue  # only orders the paper broker already filled are crossed: nothing to do
            elif not self._live_needs_core(handle, merged):
                continue
            work = TickWork(bot_id=bot_id, tick=merged, published_at=fold.published_at)
            futures.append(self._shard_for(bot_id).submit(work))
        if futures:
            # A bot whose tick failed was reloaded by its shard; the tick is not retried (a newer one comes).
            await asyncio.gather(*futures, return_exceptions=True)

    def _live_needs_core(self, handle: BotHandle, tick: Tick) -> bool:
        """A live bot's core needs the tick to arm, stop or start; crossed orders are checked at the exchange."""
        if self.checks is not None:
            self.checks.on_crossing(handle, tick)
        return _core_needs(handle, tick)


def _core_needs(handle: BotHandle, tick: Tick) -> bool:
    """The core must see the tick: a start waits for it, or it arms, stops, triggers or trails (Watch.acts_on)."""
    if handle.pending_start:
        return True
    watch = handle.watch
    return watch is not None and watch.acts_on(tick.low, tick.high)


def _paper_needs(handle: BotHandle, tick: Tick) -> bool:
    """A paper bot has something to do: a resting order not yet filled is crossed, or its core needs the tick.

    A cheap pre-check on the router's side (the shard decides again): a bot crossed only through orders the
    paper broker already filled, awaiting their fills, costs no transaction.
    """
    if _core_needs(handle, tick):
        return True
    core, pending = handle.core, handle.paper_filled
    for slot in core.buys_at_or_above(tick.low):
        order = core.state.slots[slot].order
        if order is not None and order.client_order_id not in pending:
            return True
    for slot in core.sells_at_or_below(tick.high):
        order = core.state.slots[slot].order
        if order is not None and order.client_order_id not in pending:
            return True
    return False

"""The loaded bots: their handles, the ticker index over them, and the client-order-id prefixes they own."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from engine.model import BotHandle
from engine.persistence import reads
from engine.scheduling.index import TickerIndex, TickerKey
from gridcore import Phase, bot_prefix
from trading.partitions import partition_of


class Registry:
    """Handles by bot id; the index and the prefix map follow every committed change (`reindex`)."""

    def __init__(self, on_load: Callable[[TickerKey], Awaitable[None]] | None = None) -> None:
        # Awaited before a bot loaded here is held: its market's ticks must reach this replica first.
        self._on_load = on_load
        self.handles: dict[uuid.UUID, BotHandle] = {}
        self.index = TickerIndex()
        self._prefixes: dict[str, uuid.UUID] = {}
        # Bots held per partition: the weight this replica reports for the partitions it drives.
        self.per_partition: Counter[int] = Counter()

    async def get(self, session: AsyncSession, bot_id: uuid.UUID) -> BotHandle | None:
        """The bot's handle, loaded (again) from the database when absent or stale."""
        handle = self.handles.get(bot_id)
        if handle is not None and not handle.stale:
            return handle
        loaded = await reads.load_handles(session, [bot_id])
        if not loaded:
            if handle is not None:
                self.drop(handle)
            return None
        if self._on_load is not None:
            await self._on_load(ticker_key(loaded[0]))
        self.add(loaded[0])
        return loaded[0]

    async def wake(self, session: AsyncSession, bot_ids: Iterable[uuid.UUID]) -> None:
        """Load whole, in one go, those of these bots held dormant or stale (a batch's, before it applies
        them; `get` would load them one by one)."""
        wanted = []
        for bot_id in bot_ids:
            handle = self.handles.get(bot_id)
            if handle is not None and handle.stale:
                wanted.append(bot_id)
        if len(wanted) < 2:
            return
        for loaded in await reads.load_handles(session, list(dict.fromkeys(wanted))):
            if self._on_load is not None:
                await self._on_load(ticker_key(loaded))
            self.add(loaded)

    def add(self, handle: BotHandle) -> None:
        """Hold a freshly loaded handle (replacing any earlier one) and index it."""
        if handle.id not in self.handles:
            self.per_partition[partition_of(handle.id)] += 1
        self.handles[handle.id] = handle
        self._prefixes[bot_prefix(str(handle.id))] = handle.id
        self.reindex(handle)

    def add_all(self, handles: Iterable[BotHandle]) -> None:
        """Hold many handles."""
        for handle in handles:
            self.add(handle)

    def drop(self, handle: BotHandle) -> None:
        """Forget a bot (deleted, or no longer this engine's)."""
        if self.handles.pop(handle.id, None) is not None:
            self.per_partition[partition_of(handle.id)] -= 1
        self._prefixes.pop(bot_prefix(str(handle.id)), None)
        self.index.remove(handle.id, ticker_key(handle))

    def reindex(self, handle: BotHandle) -> None:
        """Put the bot's current watch (or its wait for a start price) into the ticker index."""
        held = handle.dormant
        if handle.loaded_core is None and held is not None:
            # Read off its stored state: the same watch its restored core gives (gridcore.dormant).
            handle.watch = held.watch
            waiting = handle.pending_start and held.phase is Phase.HALTED
        else:
            core = handle.core
            watching = core.state.phase is not Phase.HALTED or bool(core.open_orders())
            waiting = handle.pending_start and core.state.phase is Phase.HALTED
            handle.watch = core.watch() if watching else None
        self.index.update(handle.id, ticker_key(handle), handle.watch, waiting=waiting)

    def by_prefix(self, prefix: str) -> BotHandle | None:
        """The loaded bot whose client order ids start with this prefix."""
        bot_id = self._prefixes.get(prefix)
        return None if bot_id is None else self.handles.get(bot_id)

    def markets(self) -> set[TickerKey]:
        """The markets of the bots held."""
        return {ticker_key(handle) for handle in self.handles.values()}

    def find(self, key: int) -> BotHandle | None:
        """The handle of a bot given as its uuid int (what the index returns)."""
        return self.handles.get(uuid.UUID(int=key))


def ticker_key(handle: BotHandle) -> TickerKey:
    """The index key of the bot's market."""
    return (handle.row.exchange, handle.row.ticker)

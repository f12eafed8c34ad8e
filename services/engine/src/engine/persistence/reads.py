"""Reads of the `bots` schema: a bot's row, levels, statistics and open orders, loaded as handles.

Money on SQLite is text (common.dbtypes.Money): sums over it are done in Python there, never in SQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.model import (
    STATE_FORMAT,
    Asks,
    BotHandle,
    BotRow,
    LevelView,
    OrderRef,
    Stats,
    dormant_of,
    new_core,
    restore_core,
)
from engine.persistence.tables import BOTS, LEVELS, ORDERS, STATES, TRADES, among, chunk_size, chunks, dialect
from gridcore import Side

_SIDES = {side.value: side for side in Side}
_YIELD_EVERY = 200


def _bot_row(bot: Any) -> BotRow:
    return BotRow(
        id=bot.id,
        user_id=bot.user_id,
        exchange=bot.exchange,
        ticker=bot.ticker,
        mode=bot.mode,
        status=bot.status,
        error_message=bot.error_message,
        stop_command_id=bot.stop_command_id,
        config_version=bot.config_version,
        order_amount=bot.order_amount,
        stop_at_max=bot.stop_at_max,
        upper_price=bot.upper_price,
        investment_amount=bot.investment_amount,
        market_rules=dict(bot.market_rules or {}),
        deleted=bot.deleted_at is not None,
        grid_type=bot.grid_type,
        trigger_price=bot.trigger_price,
        take_profit_price=bot.take_profit_price,
        stop_loss_price=bot.stop_loss_price,
        sell_base_on_stop=bool(bot.sell_base_on_stop),
        trailing_up=bool(bot.trailing_up),
        trailing_up_limit=bot.trailing_up_limit,
        triggered=bool(bot.triggered),
    )


_BOT_COLUMNS = (
    BOTS.c.id,
    BOTS.c.user_id,
    BOTS.c.exchange,
    BOTS.c.ticker,
    BOTS.c.mode,
    BOTS.c.status,
    BOTS.c.error_message,
    BOTS.c.stop_command_id,
    BOTS.c.config_version,
    BOTS.c.order_amount,
    BOTS.c.stop_at_max,
    BOTS.c.upper_price,
    BOTS.c.investment_amount,
    BOTS.c.market_rules,
    BOTS.c.deleted_at,
    BOTS.c.grid_type,
    BOTS.c.trigger_price,
    BOTS.c.take_profit_price,
    BOTS.c.stop_loss_price,
    BOTS.c.sell_base_on_stop,
    BOTS.c.trailing_up,
    BOTS.c.trailing_up_limit,
    BOTS.c.triggered,
)


async def load_row(session: AsyncSession, bot_id: uuid.UUID, *, lock: bool = False) -> BotRow | None:
    """The bot's row (locked for the transaction when asked), or None when it does not exist."""
    query = select(*_BOT_COLUMNS).where(BOTS.c.id == bot_id)
    if lock and dialect(session) == "postgresql":
        query = query.with_for_update()
    bot = (await session.execute(query)).one_or_none()
    return None if bot is None else _bot_row(bot)


def changed_asks_query(since: datetime) -> Select[Any]:
    """The resume sweep's statement: the rows of bots changed at or after `since` (ix_bots_updated_at)."""
    return select(
        BOTS.c.id, BOTS.c.status, BOTS.c.stop_command_id, BOTS.c.config_version, BOTS.c.deleted_at
    ).where(BOTS.c.updated_at >= since)


async def changed_asks(session: AsyncSession, since: datetime) -> list[Asks]:
    """What the rows of bots changed at or after `since` ask (unlocked)."""
    result = await session.execute(changed_asks_query(since))
    return [
        Asks(bot_id, status, stop, version, deleted_at is not None)
        for bot_id, status, stop, version, deleted_at in result
    ]


async def load_rows(session: AsyncSession, bot_ids: Sequence[uuid.UUID]) -> list[BotRow]:
    """The rows of these bots that exist (unlocked)."""
    rows: list[BotRow] = []
    for chunk in chunks(bot_ids, chunk_size(session)):
        result = await session.execute(select(*_BOT_COLUMNS).where(among(session, BOTS.c.id, chunk)))
        rows.extend(_bot_row(bot) for bot in result)
    return rows


async def load_levels(
    session: AsyncSession, bot_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[LevelView]]:
    """Each bot's level rows, ascending."""
    found: dict[uuid.UUID, list[LevelView]] = defaultdict(list)
    for chunk in chunks(bot_ids, chunk_size(session)):
        rows = await session.execute(
            select(
                LEVELS.c.bot_id,
                LEVELS.c.id,
                LEVELS.c.level_index,
                LEVELS.c.price,
                LEVELS.c.type,
                LEVELS.c.status,
                LEVELS.c.order_id,
                LEVELS.c.filled_at,
                LEVELS.c.active,
            )
            .where(among(session, LEVELS.c.bot_id, chunk))
            .order_by(LEVELS.c.bot_id, LEVELS.c.level_index)
        )
        # Unpacked positionally: named access per row costs a third of the load at 200,000 levels.
        for bot_id, level_id, index, price, side, status, order_id, filled_at, active in rows:
            found[bot_id].append(LevelView(level_id, index, price, side, status, order_id, filled_at, active))
    return found


async def load_stats(session: AsyncSession, bot_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Stats]:
    """Each bot's trade count, realised profit and last execution, from `trades`."""
    stats: dict[uuid.UUID, Stats] = defaultdict(Stats)
    exact_sql = dialect(session) == "postgresql"
    for chunk in chunks(bot_ids, chunk_size(session)):
        if exact_sql:
            rows = await session.execute(
                select(
                    TRADES.c.bot_id, func.count(), func.sum(TRADES.c.profit), func.max(TRADES.c.executed_at)
                )
                .where(among(session, TRADES.c.bot_id, chunk))
                .group_by(TRADES.c.bot_id)
            )
            for bot_id, count, profit, last in rows:
                stats[bot_id] = Stats(profit or Decimal(0), int(count), last)
        else:
            rows = await session.execute(
                select(TRADES.c.bot_id, TRADES.c.profit, TRADES.c.executed_at).where(
                    TRADES.c.bot_id.in_(chunk)
                )
            )
            for bot_id, profit, executed_at in rows:
                entry = stats[bot_id]
                entry.trades += 1
                entry.profit += profit or Decimal(0)
                if entry.last_executed_at is None or executed_at > entry.last_executed_at:
                    entry.last_executed_at = executed_at
    return stats


async def load_handles(
    session: AsyncSession, bot_ids: Sequence[uuid.UUID], *, dormant: bool = False
) -> list[BotHandle]:
    """Handles of existing bots: row, core (restored, or new and stopped), levels, live order rows, stats.

    With `dormant`, paper bots with a stored state are held dormant instead (model.py): row and state only,
    the core not restored, their levels, orders and stats not read; their shard loads them whole when
    something reaches them. Live bots are always loaded whole: their orders are reconciled at once.
    """
    bots: dict[uuid.UUID, BotRow] = {}
    size = chunk_size(session)
    for chunk in chunks(bot_ids, size):
        for bot in await session.execute(select(*_BOT_COLUMNS).where(among(session, BOTS.c.id, chunk))):
            bots[bot.id] = _bot_row(bot)
    if not bots:
        return []
    ids = list(bots)
    states: dict[uuid.UUID, tuple[dict[str, Any], int]] = {}
    for chunk in chunks(ids, size):
        rows = await session.execute(
            select(STATES.c.bot_id, STATES.c.state, STATES.c.version).where(
                among(session, STATES.c.bot_id, chunk)
            )
        )
        for bot_id, state, version in rows:
            states[bot_id] = (state, version)
    handles: list[BotHandle] = []
    if dormant:
        for n, bot_id in enumerate(list(bots), 1):
            if n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            held = _dormant(bots[bot_id], states.get(bot_id))
            if held is not None:
                handles.append(held)
                del bots[bot_id]
        ids = list(bots)
    levels = await load_levels(session, ids)
    stats = await load_stats(session, ids)
    whole: list[BotHandle] = []
    for n, (bot_id, row) in enumerate(bots.items(), 1):
        if n % _YIELD_EVERY == 0:
            # Restoring cores is CPU work: let the loop (the heartbeat, the ticks of bots already driven) run.
            await asyncio.sleep(0)
        if bot_id in states:
            state, version = states[bot_id]
            core, config_version, pending = restore_core(state)
        else:
            core, config_version, pending, version = (
                new_core(row, levels[bot_id], None),
                row.config_version,
                False,
                0,
            )
        handle = BotHandle(
            row=row,
            loaded_core=core,
            version=version,
            config_version=config_version,
            levels=levels[bot_id],
            stats=stats[bot_id],
            pending_start=pending,
        )
        whole.append(handle)
    await _load_orders(session, whole)
    return handles + whole


def _dormant(row: BotRow, stored: tuple[dict[str, Any], int] | None) -> BotHandle | None:
    """A dormant handle of a paper bot with a stored state whose watch reads off it; else None."""
    if row.mode != "paper" or stored is None:
        return None
    state, version = stored
    if state.get("format") != STATE_FORMAT:
        return None  # restore_core says why
    held = dormant_of(state["core"])
    if held is None:
        return None
    return BotHandle(
        row=row,
        loaded_core=None,
        version=version,
        config_version=int(state["config_version"]),
        levels=[],
        pending_start=bool(state.get("pending_start")),
        stale=True,
        dormant=held,
    )


async def _load_orders(session: AsyncSession, handles: Sequence[BotHandle]) -> None:
    """The order rows of every order each core still has open."""
    by_cid: dict[str, BotHandle] = {}
    for handle in handles:
        for _, order in handle.core.open_orders():
            by_cid[order.client_order_id] = handle
    cids = list(by_cid)
    for chunk in chunks(cids, chunk_size(session)):
        rows = await session.execute(
            select(
                ORDERS.c.id,
                ORDERS.c.client_order_id,
                ORDERS.c.slot,
                ORDERS.c.side,
                ORDERS.c.price,
                ORDERS.c.quantity,
                ORDERS.c.status,
                ORDERS.c.exchange_order_id,
            ).where(among(session, ORDERS.c.client_order_id, chunk))
        )
        # Unpacked positionally, as levels are: named access per row is most of this loop's cost.
        for order_id, cid, slot, side, price, quantity, status, exchange_order_id in rows:
            handle = by_cid[cid]
            found = handle.core.open_order(cid)
            assert found is not None
            # The core is the truth of what was applied; the row of a paper order may say filled already.
            ref = OrderRef(
                order_id, cid, slot, _SIDES[side], price, quantity, status, exchange_order_id,
                found[1].filled_qty,
            )  # fmt: skip
            handle.orders[cid] = ref
            if status == "filled" and handle.is_paper:
                handle.paper_filled.add(cid)
    for handle in handles:
        missing = [
            o.client_order_id for _, o in handle.core.open_orders() if o.client_order_id not in handle.orders
        ]
        if missing:
            raise LookupError(f"bot {handle.id}: open orders without rows: {', '.join(missing)}")


async def active_bot_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Bots the engine must drive now: running or stopping ones, and any with an order still live."""
    wanted = select(BOTS.c.id).where(
        BOTS.c.deleted_at.is_(None), (BOTS.c.status == "running") | BOTS.c.stop_command_id.is_not(None)
    )
    with_orders = select(ORDERS.c.bot_id).where(ORDERS.c.status.in_(("new", "open"))).distinct()
    ids = set((await session.execute(wanted)).scalars())
    ids.update((await session.execute(with_orders)).scalars())
    return sorted(ids)

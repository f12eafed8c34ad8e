"""Reads and writes of the `bots` schema for the engine: load bots, claim inbox ids, flush a batch.

Money on SQLite is text (common.dbtypes.Money): sums over it are done in Python there, never in SQL.
Every write of one batch happens in the caller's transaction; the engine state's version check makes a
writer holding a stale state fail (and reload) instead of overwriting a newer one.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from common.trading.models import (
    OUTBOX,
    Bot,
    EngineState,
    GridLevel,
    InboxMessage,
    Order,
    Trade,
)
from engine.core import Side
from engine.model import BotHandle, BotRow, LevelView, OrderRef, Stats, new_core, restore_core
from engine.step import Step

ORDERS: Table = Order.__table__  # type: ignore[assignment]
TRADES: Table = Trade.__table__  # type: ignore[assignment]
LEVELS: Table = GridLevel.__table__  # type: ignore[assignment]
BOTS: Table = Bot.__table__  # type: ignore[assignment]
STATES: Table = EngineState.__table__  # type: ignore[assignment]
INBOX: Table = InboxMessage.__table__  # type: ignore[assignment]
_CHUNK = 1000


class StaleStateError(Exception):
    """Another writer advanced a bot's engine state since this one loaded it."""


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- inbox ------------------------------------------------------------------------------------------------


async def claim_inbox(session: AsyncSession, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record message ids as handled by `consumer`; returns those that already were (duplicates)."""
    if not message_ids:
        return set()
    unique = list(dict.fromkeys(message_ids))
    rows = [{"consumer": consumer, "message_id": mid, "processed_at": func.now()} for mid in unique]
    dialect = _dialect(session)
    inserted: set[str] = set()
    for chunk in _chunks(rows):
        values = [{"consumer": r["consumer"], "message_id": r["message_id"]} for r in chunk]
        if dialect == "postgresql":
            stmt: Any = postgresql.insert(INBOX).values(values).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(INBOX).values(values).on_conflict_do_nothing()
        result = await session.execute(stmt.returning(INBOX.c.message_id))
        inserted.update(result.scalars())
    return set(unique) - inserted


# --- loading ------------------------------------------------------------------------------------------------


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
)


async def load_row(session: AsyncSession, bot_id: uuid.UUID, *, lock: bool = False) -> BotRow | None:
    """The bot's row (locked for the transaction when asked), or None when it does not exist."""
    query = select(*_BOT_COLUMNS).where(BOTS.c.id == bot_id)
    if lock and _dialect(session) == "postgresql":
        query = query.with_for_update()
    bot = (await session.execute(query)).one_or_none()
    return None if bot is None else _bot_row(bot)


async def load_levels(
    session: AsyncSession, bot_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[LevelView]]:
    """Each bot's level rows, ascending."""
    found: dict[uuid.UUID, list[LevelView]] = defaultdict(list)
    for chunk in _chunks(bot_ids):
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
            )
            .where(LEVELS.c.bot_id.in_(chunk))
            .order_by(LEVELS.c.bot_id, LEVELS.c.level_index)
        )
        for r in rows:
            found[r.bot_id].append(
                LevelView(r.id, r.level_index, r.price, r.type, r.status, r.order_id, r.filled_at)
            )
    return found


async def load_stats(session: AsyncSession, bot_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Stats]:
    """Each bot's trade count, realised profit and last execution, from `trades`."""
    stats: dict[uuid.UUID, Stats] = defaultdict(Stats)
    exact_sql = _dialect(session) == "postgresql"
    for chunk in _chunks(bot_ids):
        if exact_sql:
            rows = await session.execute(
                select(
                    TRADES.c.bot_id, func.count(), func.sum(TRADES.c.profit), func.max(TRADES.c.executed_at)
                )
                .where(TRADES.c.bot_id.in_(chunk))
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


async def load_handles(session: AsyncSession, bot_ids: Sequence[uuid.UUID]) -> list[BotHandle]:
    """Handles of existing bots: row, core (restored, or new and stopped), levels, live order rows, stats."""
    bots: dict[uuid.UUID, BotRow] = {}
    for chunk in _chunks(bot_ids):
        for bot in await session.execute(select(*_BOT_COLUMNS).where(BOTS.c.id.in_(chunk))):
            bots[bot.id] = _bot_row(bot)
    if not bots:
        return []
    ids = list(bots)
    states: dict[uuid.UUID, tuple[dict[str, Any], int]] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(STATES.c.bot_id, STATES.c.state, STATES.c.version).where(STATES.c.bot_id.in_(chunk))
        )
        for bot_id, state, version in rows:
            states[bot_id] = (state, version)
    levels = await load_levels(session, ids)
    stats = await load_stats(session, ids)
    handles: list[BotHandle] = []
    for bot_id, row in bots.items():
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
            core=core,
            version=version,
            config_version=config_version,
            levels=levels[bot_id],
            stats=stats[bot_id],
            pending_start=pending,
        )
        handles.append(handle)
    await _load_orders(session, handles)
    return handles


async def _load_orders(session: AsyncSession, handles: Sequence[BotHandle]) -> None:
    """The order rows of every order each core still has open."""
    by_cid: dict[str, BotHandle] = {}
    for handle in handles:
        for _, order in handle.core.open_orders():
            by_cid[order.client_order_id] = handle
    cids = list(by_cid)
    for chunk in _chunks(cids):
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
            ).where(ORDERS.c.client_order_id.in_(chunk))
        )
        for r in rows:
            handle = by_cid[r.client_order_id]
            found = handle.core.open_order(r.client_order_id)
            assert found is not None
            # The core is the truth of what was applied; the row of a paper order may say filled already.
            ref = OrderRef(
                r.id, r.client_order_id, r.slot, Side(r.side), r.price, r.quantity, r.status,
                r.exchange_order_id, found[1].filled_qty,
            )  # fmt: skip
            handle.orders[ref.client_order_id] = ref
            if handle.is_paper and r.status == "filled":
                handle.paper_filled.add(ref.client_order_id)
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


# --- writing a batch ------------------------------------------------------------------------------------


async def write_status(
    session: AsyncSession,
    bot_id: uuid.UUID,
    status: str,
    error_message: str | None,
    now: datetime,
    *,
    stop_command_id: str | None,
) -> bool:
    """Set the bot's status: settling that stop command, or (None) only while no stop is pending."""
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "stopped":
        values.update(error_message=None, error_code=None)
    elif status == "error":
        values.update(error_message=error_message, error_code=None)
    guard = BOTS.c.stop_command_id == stop_command_id if stop_command_id else BOTS.c.stop_command_id.is_(None)
    result = await session.execute(update(BOTS).where(BOTS.c.id == bot_id, guard).values(**values))
    return bool(getattr(result, "rowcount", 0))


async def flush(
    session: AsyncSession, steps: Sequence[Step], owner: str | None, lease: timedelta | None = None
) -> None:
    """Write every row the steps produced; raises StaleStateError when a bot's state moved on meanwhile."""
    order_inserts = [row for step in steps for row in step.order_inserts]
    if order_inserts:
        await session.execute(insert(ORDERS), order_inserts)
    order_updates = [
        {
            "b_id": ref.id,
            "b_status": ref.status,
            "b_filled": ref.filled_qty,
            "b_exchange_id": ref.exchange_order_id,
            "b_now": step.now,
        }
        for step in steps
        for ref in step.order_updates.values()
    ]
    order_updates += [mark for step in steps for mark in step.paper_marks]
    if order_updates:
        await session.execute(
            update(ORDERS)
            .where(ORDERS.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                filled_quantity=bindparam("b_filled"),
                exchange_order_id=bindparam("b_exchange_id"),
                updated_at=bindparam("b_now"),
            ),
            order_updates,
        )
    trades = [row for step in steps for row in step.trade_inserts]
    if trades:
        await session.execute(insert(TRADES), trades)
    levels = [
        {
            "b_id": level.id,
            "b_type": level.type,
            "b_status": level.status,
            "b_order": level.order_id,
            "b_filled_at": level.filled_at,
            "b_now": step.now,
        }
        for step in steps
        for level in (step.handle.levels[i] for i in step.level_updates)
    ]
    if levels:
        await session.execute(
            update(LEVELS)
            .where(LEVELS.c.id == bindparam("b_id"))
            .values(
                type=bindparam("b_type"),
                status=bindparam("b_status"),
                order_id=bindparam("b_order"),
                filled_at=bindparam("b_filled_at"),
                updated_at=bindparam("b_now"),
            ),
            levels,
        )
    executed = [
        {"b_id": step.handle.id, "b_last": step.last_executed_at}
        for step in steps
        if step.last_executed_at is not None
    ]
    if executed:
        await session.execute(
            update(BOTS).where(BOTS.c.id == bindparam("b_id")).values(last_executed_at=bindparam("b_last")),
            executed,
        )
    for step in steps:
        if step.error_write is not None:
            await write_status(
                session, step.handle.id, "error", step.error_write, step.now, stop_command_id=None
            )
    await _write_states(session, [step for step in steps if step.state_changed], owner, lease)
    outbox = [row for step in steps for row in step.outbox]
    if outbox:
        await session.execute(insert(OUTBOX), outbox)


async def _write_states(
    session: AsyncSession, steps: Sequence[Step], owner: str | None, lease: timedelta | None
) -> None:
    inserts = [step for step in steps if step.handle.version == 0]
    updates = [step for step in steps if step.handle.version != 0]
    for step in inserts:
        await session.execute(
            insert(STATES).values(
                bot_id=step.handle.id,
                state=step.handle.snapshot(),
                version=1,
                owner=owner,
                lease_expires_at=step.now + lease if lease is not None else None,
                updated_at=step.now,
            )
        )
    if updates and _dialect(session) == "postgresql":
        await _update_states_bulk(session, updates)
    else:
        for step in updates:
            handle = step.handle
            result = await session.execute(
                update(STATES)
                .where(STATES.c.bot_id == handle.id, STATES.c.version == handle.version)
                .values(state=handle.snapshot(), version=handle.version + 1, updated_at=step.now)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise StaleStateError(f"engine state of bot {handle.id} moved past version {handle.version}")
    for step in steps:
        step.new_version = step.handle.version + 1


_BULK_STATES = text(
    """
    UPDATE bots.engine_states AS e
       SET state = CAST(v.state AS JSON), version = e.version + 1, updated_at = :now
      FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]), CAST(:versions AS int[]))
           AS v(bot_id, state, version)
     WHERE e.bot_id = v.bot_id AND e.version = v.version
    RETURNING e.bot_id
    """
)


async def _update_states_bulk(session: AsyncSession, steps: Sequence[Step]) -> None:
    """Every state of the batch in one statement; a bot whose version moved on is not updated (and fails)."""
    params = {
        "ids": [step.handle.id for step in steps],
        "states": [json.dumps(step.handle.snapshot(), separators=(",", ":")) for step in steps],
        "versions": [step.handle.version for step in steps],
        "now": steps[0].now,
    }
    updated = set((await session.execute(_BULK_STATES, params)).scalars())
    stale = [str(step.handle.id) for step in steps if step.handle.id not in updated]
    if stale:
        raise StaleStateError(f"engine states moved on meanwhile: {', '.join(stale[:5])}")

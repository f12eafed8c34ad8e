"""Reads and writes of the `bots` schema for the engine: load bots, claim inbox ids, flush a batch.

Money on SQLite is text (common.dbtypes.Money): sums over it are done in Python there, never in SQL.
Every write of one batch happens in the caller's transaction; the engine state's version check makes a
writer holding a stale state fail (and reload) instead of overwriting a newer one.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from common.trading.models import (
    OUTBOX,
    Bot,
    EnginePartition,
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
PARTITIONS: Table = EnginePartition.__table__  # type: ignore[assignment]
_CHUNK = 1000


class StaleStateError(Exception):
    """Another writer advanced a bot's engine state since this one loaded it."""


class FencedError(StaleStateError):
    """Another replica claimed partitions of the batch's bots: this replica must not write them any more."""

    def __init__(self, partitions: set[int]) -> None:
        super().__init__(f"partitions {sorted(partitions)} belong to another engine replica now")
        self.partitions = partitions


async def fence(session: AsyncSession, owner: str, epochs: Mapping[int, int]) -> None:
    """Check, first in a batch's transaction, that this replica still holds the batch's partitions at the
    epochs it claimed them at; raises FencedError otherwise.

    On PostgreSQL the rows are taken FOR SHARE: a claim (which raises the epoch) waits until this batch
    committed, and a batch that started after the claim finds the new epoch.
    """
    if not epochs:
        return
    query = select(PARTITIONS.c.partition).where(
        tuple_(PARTITIONS.c.partition, PARTITIONS.c.epoch).in_(list(epochs.items())),
        PARTITIONS.c.owner == owner,
    )
    if _dialect(session) == "postgresql":
        query = query.with_for_update(read=True)
    held = set((await session.execute(query)).scalars())
    if len(held) != len(epochs):
        raise FencedError(set(epochs) - held)


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


async def changed_rows(session: AsyncSession, since: datetime) -> list[BotRow]:
    """The rows of bots changed at or after `since` (unlocked)."""
    result = await session.execute(select(*_BOT_COLUMNS).where(BOTS.c.updated_at >= since))
    return [_bot_row(bot) for bot in result]


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
    stop_reason: str | None,
) -> bool:
    """Set the bot's status and stop reason: settling that stop command, or (None) only while none is pending."""
    # A stopped bot's error_message is what the user must still know (usually nothing: None).
    values: dict[str, Any] = {"status": status, "updated_at": now, "stop_reason": stop_reason}
    if status in ("stopped", "error"):
        values.update(error_message=error_message, error_code=None)
    guard = BOTS.c.stop_command_id == stop_command_id if stop_command_id else BOTS.c.stop_command_id.is_(None)
    result = await session.execute(update(BOTS).where(BOTS.c.id == bot_id, guard).values(**values))
    return bool(getattr(result, "rowcount", 0))


async def flush(session: AsyncSession, steps: Sequence[Step]) -> None:
    """Write every row the steps produced; raises StaleStateError when a bot's state moved on meanwhile."""
    for step in steps:
        if step.error_write is not None:
            await write_status(
                session,
                step.handle.id,
                "error",
                step.error_write,
                step.now,
                stop_command_id=None,
                stop_reason="error",
            )
    if _dialect(session) == "postgresql":
        await _flush_postgresql(session, steps)
        return
    await _claim_applied(session, steps)
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
    await _write_states(session, [step for step in steps if step.state_changed])
    outbox = [row for step in steps for row in step.outbox]
    if outbox:
        await session.execute(insert(OUTBOX), outbox)


async def _claim_applied(session: AsyncSession, steps: Sequence[Step]) -> None:
    """Record the inbox ids of fills the steps applied without a message (paper fills).

    One that is there already was applied by a committed transaction that this writer's state does not
    reflect: the batch must not commit (a fill is recorded once); the bot is reloaded and the work retried.
    """
    by_consumer: dict[str, list[str]] = defaultdict(list)
    for step in steps:
        for consumer, message_id in step.inbox_claims:
            by_consumer[consumer].append(message_id)
    for consumer, ids in by_consumer.items():
        earlier = await claim_inbox(session, consumer, ids)
        if earlier:
            raise StaleStateError(f"fills already recorded ({consumer}): {', '.join(sorted(earlier))}")


async def _write_states(session: AsyncSession, steps: Sequence[Step]) -> None:
    inserts = [step for step in steps if step.handle.version == 0]
    updates = [step for step in steps if step.handle.version != 0]
    for step in inserts:
        await session.execute(
            insert(STATES).values(
                bot_id=step.handle.id,
                state=step.handle.snapshot(),
                version=1,
                updated_at=step.now,
            )
        )
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


# --- one statement per batch (PostgreSQL) -------------------------------------------------------------------
#
# A batch's rows go to the server in one statement: every insert and update is a data-modifying CTE over
# unnest()ed arrays (one array per column; an empty one is a part with nothing to do), so a batch costs
# BEGIN, this one prepared statement and COMMIT, whatever it holds. The CTEs all run against the
# statement's one snapshot and none sees another's rows, so an order both inserted and updated within the
# batch is inserted as it ends up (foreign keys are checked at the end of the statement, so a trade may
# name an order inserted beside it). The statement returns the bots whose state version matched and the
# inbox ids newly claimed; the caller fails the transaction on anything else.

_BATCH = text(
    """
    WITH o AS (
        INSERT INTO bots.orders (id, bot_id, exchange, client_order_id, exchange_order_id, slot, side, price,
                                 quantity, filled_quantity, status, created_at, updated_at)
        SELECT * FROM unnest(
            CAST(:o_id AS uuid[]), CAST(:o_bot_id AS uuid[]), CAST(:o_exchange AS text[]),
            CAST(:o_client_order_id AS text[]), CAST(:o_exchange_order_id AS text[]), CAST(:o_slot AS int[]),
            CAST(:o_side AS text[]), CAST(:o_price AS numeric[]), CAST(:o_quantity AS numeric[]),
            CAST(:o_filled_quantity AS numeric[]), CAST(:o_status AS text[]),
            CAST(:o_created_at AS timestamptz[]), CAST(:o_updated_at AS timestamptz[]))
    ), u AS (
        UPDATE bots.orders AS t
           SET status = v.status, filled_quantity = v.filled_quantity,
               exchange_order_id = v.exchange_order_id, updated_at = v.updated_at
          FROM unnest(
            CAST(:u_id AS uuid[]), CAST(:u_status AS text[]), CAST(:u_filled_quantity AS numeric[]),
            CAST(:u_exchange_order_id AS text[]), CAST(:u_updated_at AS timestamptz[])
          ) AS v(id, status, filled_quantity, exchange_order_id, updated_at)
         WHERE t.id = v.id
    ), t AS (
        INSERT INTO bots.trades (id, bot_id, order_id, fill_id, side, price, amount, total, fee, fee_currency,
                                 profit, executed_at, created_at)
        SELECT * FROM unnest(
            CAST(:t_id AS uuid[]), CAST(:t_bot_id AS uuid[]), CAST(:t_order_id AS uuid[]),
            CAST(:t_fill_id AS text[]), CAST(:t_side AS text[]), CAST(:t_price AS numeric[]),
            CAST(:t_amount AS numeric[]), CAST(:t_total AS numeric[]), CAST(:t_fee AS numeric[]),
            CAST(:t_fee_currency AS text[]), CAST(:t_profit AS numeric[]),
            CAST(:t_executed_at AS timestamptz[]), CAST(:t_created_at AS timestamptz[]))
    ), l AS (
        UPDATE bots.grid_levels AS t
           SET type = v.type, status = v.status, order_id = v.order_id, filled_at = v.filled_at,
               updated_at = v.updated_at
          FROM unnest(
            CAST(:l_id AS uuid[]), CAST(:l_type AS text[]), CAST(:l_status AS text[]),
            CAST(:l_order_id AS text[]), CAST(:l_filled_at AS timestamptz[]),
            CAST(:l_updated_at AS timestamptz[])
          ) AS v(id, type, status, order_id, filled_at, updated_at)
         WHERE t.id = v.id
    ), b AS (
        UPDATE bots.bots AS t
           SET last_executed_at = v.last_executed_at
          FROM unnest(CAST(:b_id AS uuid[]), CAST(:b_last_executed_at AS timestamptz[]))
               AS v(id, last_executed_at)
         WHERE t.id = v.id
    ), n AS (
        INSERT INTO bots.engine_states (bot_id, state, version, updated_at)
        SELECT v.bot_id, CAST(v.state AS json), 1, v.updated_at
          FROM unnest(
            CAST(:n_bot_id AS uuid[]), CAST(:n_state AS text[]), CAST(:n_updated_at AS timestamptz[])
          ) AS v(bot_id, state, updated_at)
    ), s AS (
        UPDATE bots.engine_states AS t
           SET state = CAST(v.state AS json), version = t.version + 1, updated_at = v.updated_at
          FROM unnest(
            CAST(:s_bot_id AS uuid[]), CAST(:s_state AS text[]), CAST(:s_version AS int[]),
            CAST(:s_updated_at AS timestamptz[])
          ) AS v(bot_id, state, version, updated_at)
         WHERE t.bot_id = v.bot_id AND t.version = v.version
        RETURNING t.bot_id
    ), x AS (
        INSERT INTO bots.bots_outbox (message_id, exchange, routing_key, payload, request_id, created_at)
        SELECT v.message_id, v.exchange, v.routing_key, CAST(v.payload AS json), v.request_id, v.created_at
          FROM unnest(
            CAST(:x_message_id AS text[]), CAST(:x_exchange AS text[]), CAST(:x_routing_key AS text[]),
            CAST(:x_payload AS text[]), CAST(:x_request_id AS text[]), CAST(:x_created_at AS timestamptz[])
          ) AS v(message_id, exchange, routing_key, payload, request_id, created_at)
    ), i AS (
        INSERT INTO bots.bots_inbox (consumer, message_id, processed_at)
        SELECT v.consumer, v.message_id, now()
          FROM unnest(CAST(:i_consumer AS text[]), CAST(:i_message_id AS text[])) AS v(consumer, message_id)
        ON CONFLICT DO NOTHING
        RETURNING message_id
    )
    SELECT ARRAY(SELECT bot_id FROM s) AS updated, ARRAY(SELECT message_id FROM i) AS claimed
    """
)

# Each part's array parameters (prefix, columns with their kind: money and times are checked as the
# Money and UtcDateTime column types check them).
_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "o": (
        ("id", ""), ("bot_id", ""), ("exchange", ""), ("client_order_id", ""), ("exchange_order_id", ""),
        ("slot", ""), ("side", ""), ("price", "money"), ("quantity", "money"), ("filled_quantity", "money"),
        ("status", ""), ("created_at", "time"), ("updated_at", "time"),
    ),
    "u": (
        ("id", ""), ("status", ""), ("filled_quantity", "money"), ("exchange_order_id", ""),
        ("updated_at", "time"),
    ),
    "t": (
        ("id", ""), ("bot_id", ""), ("order_id", ""), ("fill_id", ""), ("side", ""), ("price", "money"),
        ("amount", "money"), ("total", "money"), ("fee", "money"), ("fee_currency", ""), ("profit", "money"),
        ("executed_at", "time"), ("created_at", "time"),
    ),
    "l": (
        ("id", ""), ("type", ""), ("status", ""), ("order_id", ""), ("filled_at", "time"),
        ("updated_at", "time"),
    ),
    "b": (("id", ""), ("last_executed_at", "time")),
    "n": (("bot_id", ""), ("state", ""), ("updated_at", "time")),
    "s": (("bot_id", ""), ("state", ""), ("version", ""), ("updated_at", "time")),
    "x": (
        ("message_id", ""), ("exchange", ""), ("routing_key", ""), ("payload", ""), ("request_id", ""),
        ("created_at", "time"),
    ),
    "i": (("consumer", ""), ("message_id", "")),
}  # fmt: skip


def _bind(value: Any, kind: str) -> Any:
    """One array element: money exact (never a float), times aware and in UTC."""
    if value is None or not kind:
        return value
    if kind == "money":
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        exact = Decimal(value)
        if not exact.is_finite():
            raise ValueError("money must be finite")
        return exact
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
    return value.astimezone(UTC)


def _json(value: Any) -> str:
    """JSON text of a snapshot or payload (JSON types only: a Decimal or anything else fails loudly)."""
    return orjson.dumps(value).decode()


async def _flush_postgresql(session: AsyncSession, steps: Sequence[Step]) -> None:
    rows: dict[str, list[dict[str, Any]]] = {part: [] for part in _PARTS}
    inserted: dict[uuid.UUID, dict[str, Any]] = {}
    for step in steps:
        for row in step.order_inserts:
            inserted[row["id"]] = dict(row)
    for step in steps:
        for ref in step.order_updates.values():
            fate = {
                "status": ref.status,
                "filled_quantity": ref.filled_qty,
                "exchange_order_id": ref.exchange_order_id,
                "updated_at": step.now,
            }
            if ref.id in inserted:
                inserted[ref.id].update(fate)  # a row this batch inserts goes in as it ends up
            else:
                rows["u"].append({"id": ref.id, **fate})
    rows["o"] = list(inserted.values())
    changed = [step for step in steps if step.state_changed]
    for step in steps:
        handle, now = step.handle, step.now
        rows["t"].extend(step.trade_inserts)
        for index in step.level_updates:
            level = handle.levels[index]
            rows["l"].append(
                {
                    "id": level.id,
                    "type": level.type,
                    "status": level.status,
                    "order_id": level.order_id,
                    "filled_at": level.filled_at,
                    "updated_at": now,
                }
            )
        if step.last_executed_at is not None:
            rows["b"].append({"id": handle.id, "last_executed_at": step.last_executed_at})
        if step.state_changed:
            state = _json(handle.snapshot())
            if handle.version == 0:
                rows["n"].append({"bot_id": handle.id, "state": state, "updated_at": now})
            else:
                rows["s"].append(
                    {"bot_id": handle.id, "state": state, "version": handle.version, "updated_at": now}
                )
        rows["x"].extend(dict(row, payload=_json(row["payload"])) for row in step.outbox)
        rows["i"].extend({"consumer": c, "message_id": m} for c, m in step.inbox_claims)
    if not any(rows.values()):
        return
    rows["s"].sort(key=lambda row: row["bot_id"])  # states are locked in bot id order by every writer
    params: dict[str, Any] = {}
    for part, columns in _PARTS.items():
        for name, kind in columns:
            params[f"{part}_{name}"] = [_bind(row[name], kind) for row in rows[part]]
    updated, claimed = (await session.execute(_BATCH, params)).one()
    stale = {row["bot_id"] for row in rows["s"]}.difference(updated)
    if stale:
        raise StaleStateError(f"engine states moved on meanwhile: {', '.join(map(str, list(stale)[:5]))}")
    earlier = {row["message_id"] for row in rows["i"]}.difference(claimed)
    if earlier or len(claimed) != len(rows["i"]):
        raise StaleStateError(f"fills already recorded: {', '.join(sorted(earlier))}")
    for step in changed:
        step.new_version = step.handle.version + 1

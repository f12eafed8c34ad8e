"""One statement per batch on PostgreSQL: every insert and update as data-modifying CTEs over arrays."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.persistence.errors import StaleStateError
from engine.persistence.statement import Part, insert_part, update_part, with_statement
from engine.persistence.tables import BOTS, INBOX, LEVELS, ORDERS, STATES, TRADES
from engine.step import Step
from trading.models import ENGINE_OUTBOX

# --- one statement per batch (PostgreSQL) -------------------------------------------------------------------
#
# A batch's rows go to the server in one statement: every insert and update is a data-modifying CTE over
# unnest()ed arrays (one array per column; an empty one is a part with nothing to do), so a batch costs
# BEGIN, this one prepared statement and COMMIT, whatever it holds. The CTEs all run against the
# statement's one snapshot and none sees another's rows, so an order both inserted and updated within the
# batch is inserted as it ends up (foreign keys are checked at the end of the statement, so a trade may
# name an order inserted beside it). The statement returns the bots whose state version matched and the
# inbox ids newly claimed; the caller fails the transaction on anything else.
#
# The statement is generated from the trading tables' metadata (engine.persistence.statement): an insert
# writes every column of its table, an update the columns named below, each array cast to its column's type.

PARTS: tuple[Part, ...] = (
    insert_part("o", ORDERS),
    # An order's fate: what its fills, cancel or the exchange's ack change.
    update_part(
        "u", ORDERS, keys=("id",), sets=("status", "filled_quantity", "exchange_order_id", "updated_at")
    ),
    insert_part("t", TRADES),
    update_part(
        "l", LEVELS, keys=("id",), sets=("type", "status", "order_id", "filled_at", "active", "updated_at")
    ),
    insert_part("g", LEVELS),  # levels trailing up added
    # Both columns in one part: two parts updating one row in one statement would leave only one change.
    update_part("b", BOTS, keys=("id",), sets=("last_executed_at", "triggered")),
    insert_part("n", STATES, fixed={"version": "1"}),
    # Only where the version is still the one this writer loaded: a stale writer updates nothing.
    update_part(
        "s",
        STATES,
        keys=("bot_id", "version"),
        sets=("state", "updated_at"),
        fixed={"version": "t.version + 1"},
        tail="RETURNING t.bot_id",
    ),
    insert_part("x", ENGINE_OUTBOX),
    insert_part(
        "i", INBOX, fixed={"processed_at": "now()"}, tail="ON CONFLICT DO NOTHING\nRETURNING message_id"
    ),
)
"""The batch's parts, by the name of their CTE (and prefix of their parameters)."""

# Every statement of the engine names its rows by key (a bot's id, an order's id, a client order id), a few
# rows at a time. The planner is told so on the engine's connections: with a table's statistics behind its
# size (never analyzed yet, or autovacuum off as on these machines), a plan made while the table was small
# joins a batch's arrays to it by a hash over a sequential scan, and asyncpg's cached statement keeps that
# generic plan for the connection's life: every fill then read every order ever placed (6 ms a batch with
# 10,000 orders; docs/api-load.md "Every fill read every order"). A sequential scan stays possible where no
# index serves (the replicas' and partitions' few rows), at the planner's penalty cost; that cost would pass
# the threshold of JIT compilation, tens of milliseconds to run a lookup of microseconds, hence no JIT. And
# the generic plan always: it is the same index lookups, where PostgreSQL's own choice kept planning the
# batch afresh at every execution (its custom plans know each array's length, so they look cheaper), 0.3 ms
# of the server's CPU a batch (bench/batch_plan.py).
KEYED_PLANS: dict[str, str] = {
    "enable_seqscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "jit": "off",
    "plan_cache_mode": "force_generic_plan",
}
"""Planner settings of the engine's connections (`server_settings`): index lookups by key, whatever the stats."""

BATCH_SQL = with_statement(
    PARTS, "SELECT ARRAY(SELECT bot_id FROM s) AS updated, ARRAY(SELECT message_id FROM i) AS claimed"
)
_BATCH = text(BATCH_SQL)


def bot_update(step: Step) -> dict[str, Any]:
    """The engine's columns of the bot's row, as the step leaves them."""
    handle = step.handle
    return {
        "id": handle.id,
        "last_executed_at": handle.stats.last_executed_at,
        "triggered": handle.row.triggered,
    }


async def flush_postgresql(session: AsyncSession, steps: Sequence[Step]) -> None:
    """Write every row the steps produced in one statement; raises StaleStateError as writes.flush does."""
    rows: dict[str, list[dict[str, Any]]] = {part.name: [] for part in PARTS}
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
                    "active": level.active,
                    "updated_at": now,
                }
            )
        rows["g"].extend(step.level_inserts)
        if step.last_executed_at is not None or step.triggered_write is not None:
            rows["b"].append(bot_update(step))
        if step.state_changed:
            state = handle.snapshot()
            if handle.version == 0:
                rows["n"].append({"bot_id": handle.id, "state": state, "updated_at": now})
            else:
                rows["s"].append(
                    {"bot_id": handle.id, "state": state, "version": handle.version, "updated_at": now}
                )
        rows["x"].extend(step.outbox)
        rows["i"].extend({"consumer": c, "message_id": m} for c, m in step.inbox_claims)
    if not any(rows.values()):
        return
    rows["s"].sort(key=lambda row: row["bot_id"])  # states are locked in bot id order by every writer
    params: dict[str, Any] = {}
    for part in PARTS:
        params.update(part.arrays(rows[part.name]))
    updated, claimed = (await session.execute(_BATCH, params)).one()
    stale = {row["bot_id"] for row in rows["s"]}.difference(updated)
    if stale:
        raise StaleStateError(f"engine states moved on meanwhile: {', '.join(map(str, list(stale)[:5]))}")
    earlier = {row["message_id"] for row in rows["i"]}.difference(claimed)
    if earlier or len(claimed) != len(rows["i"]):
        raise StaleStateError(f"fills already recorded: {', '.join(sorted(earlier))}")
    for step in changed:
        step.new_version = step.handle.version + 1

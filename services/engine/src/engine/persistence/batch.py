"""One statement per batch on PostgreSQL: every insert and update as data-modifying CTEs over arrays."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.persistence.errors import StaleStateError
from engine.step import Step

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


async def flush_postgresql(session: AsyncSession, steps: Sequence[Step]) -> None:
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

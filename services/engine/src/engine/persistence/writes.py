"""Writes of one batch, in the caller's transaction: the fence, inbox claims, statuses, rows and states.

The engine state's version check makes a writer holding a stale state fail (and reload) instead of
overwriting a newer one; the fence makes a replica that lost a bot's partition fail before anything else.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from engine.persistence.batch import bot_update, flush_postgresql
from engine.persistence.errors import FencedError, StaleStateError
from engine.persistence.tables import (
    BOTS,
    INBOX,
    LEVELS,
    ORDERS,
    PARTITIONS,
    STATES,
    TRADES,
    chunks,
    dialect,
)
from engine.step import Step
from trading.models import ENGINE_OUTBOX


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
    if dialect(session) == "postgresql":
        query = query.with_for_update(read=True)
    held = set((await session.execute(query)).scalars())
    if len(held) != len(epochs):
        raise FencedError(set(epochs) - held)


async def claim_inbox(session: AsyncSession, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record message ids as handled by `consumer`; returns those that already were (duplicates)."""
    if not message_ids:
        return set()
    unique = list(dict.fromkeys(message_ids))
    rows = [{"consumer": consumer, "message_id": mid, "processed_at": func.now()} for mid in unique]
    name = dialect(session)
    inserted: set[str] = set()
    for chunk in chunks(rows):
        values = [{"consumer": r["consumer"], "message_id": r["message_id"]} for r in chunk]
        if name == "postgresql":
            stmt: Any = postgresql.insert(INBOX).values(values).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(INBOX).values(values).on_conflict_do_nothing()
        result = await session.execute(stmt.returning(INBOX.c.message_id))
        inserted.update(result.scalars())
    return set(unique) - inserted


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
    if dialect(session) == "postgresql":
        await flush_postgresql(session, steps)
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
            "b_active": level.active,
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
                active=bindparam("b_active"),
                updated_at=bindparam("b_now"),
            ),
            levels,
        )
    added = [row for step in steps for row in step.level_inserts]
    if added:
        await session.execute(insert(LEVELS), added)
    executed = [
        {f"b_{name}": value for name, value in bot_update(step).items()}
        for step in steps
        if step.last_executed_at is not None or step.triggered_write is not None
    ]
    if executed:
        await session.execute(
            update(BOTS)
            .where(BOTS.c.id == bindparam("b_id"))
            .values(last_executed_at=bindparam("b_last_executed_at"), triggered=bindparam("b_triggered")),
            executed,
        )
    await _write_states(session, [step for step in steps if step.state_changed])
    outbox = [row for step in steps for row in step.outbox]
    if outbox:
        await session.execute(insert(ENGINE_OUTBOX), outbox)


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

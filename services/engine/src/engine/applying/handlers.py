"""How each kind of work changes a bot, inside its shard's transaction (the Step collects the writes)."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.contracts.bots import BotEvent
from common.contracts.bots import BotStatus as WireStatus
from engine import outgoing
from engine.applying import paper_broker
from engine.contracts import FILLS_QUEUE, OrderFilledMessage
from engine.model import Asks, BotHandle, BotRow, OrderRef, new_core, same_grid, with_options
from engine.persistence import reads, tables, writes
from engine.step import NEW, OPEN, Step
from engine.work import (
    AbandonWork,
    AckWork,
    AdoptWork,
    CommandWork,
    FillWork,
    KeysGoneWork,
    OrderClosedWork,
    ResumeWork,
    TickWork,
    Work,
)
from gridcore import (
    Abandon,
    ConfigChanged,
    GridBot,
    OpenOrder,
    OrderFilled,
    Phase,
    Side,
    SlotState,
    Start,
    Stop,
    StopReason,
    parse_client_order_id,
)

log = logging.getLogger(__name__)

STOPPED_WITH_ERROR = "The bot was stopped with an error"


async def apply(session: AsyncSession, step: Step, work: Work) -> None:
    """Apply one unit of work to its bot's step."""
    if isinstance(work, TickWork):
        await _tick(session, step, work)
    elif isinstance(work, FillWork):
        apply_fill(step, work.message)
    elif isinstance(work, CommandWork):
        await _command(session, step, work)
    elif isinstance(work, AckWork):
        _ack(step, work)
    elif isinstance(work, OrderClosedWork) and step.handle.core.open_order(work.event.client_order_id):
        step.feed(work.event)
    elif isinstance(work, AdoptWork):
        await _adopt(session, step, work)
    elif isinstance(work, ResumeWork):
        await _resume(session, step, work)
    elif isinstance(work, KeysGoneWork):
        await _keys_gone(session, step, work)
    elif isinstance(work, AbandonWork):
        _abandon(step)
    while step.halt_done is not None:
        await complete_halt(session, step)


# --- ticks ------------------------------------------------------------------------------------------------


async def _tick(session: AsyncSession, step: Step, work: TickWork) -> None:
    handle, tick = step.handle, work.tick
    if handle.pending_start and handle.halted:
        row = await reads.load_row(session, handle.id, lock=True)
        if row is not None:
            await start(session, step, row, tick.last)
            if work.published_at is not None:
                step.triggers.append(work.published_at)
        return
    if handle.is_paper:
        _paper_fills(step, work)
    if handle.core.watch().acts_on(tick.low, tick.high):
        step.feed(tick)
        if work.published_at is not None:
            step.triggers.append(work.published_at)


# --- fills and order fates ----------------------------------------------------------------------------------


def _paper_fills(step: Step, work: TickWork) -> None:
    """The paper broker's fills of the tick, applied at once: the same `order.filled` a live fill is.

    The paper exchange is this process and the fills are known here and now, so a message round trip
    (outbox → `orders` → fill consumer → another batch) would only add a second commit before the next
    order rests. Each fill is the `OrderFilledMessage` a live fill would be, applied by `apply_fill` (the
    fill consumer's path) and recorded under the inbox id a delivery of it would carry, in this batch's
    transaction: a copy of it ever arriving is dropped as a redelivery.
    """
    handle = step.handle
    fills = paper_broker.crossed_fills(handle, work.tick)
    if not fills:
        return
    # All of the tick's fills are taken before any is applied (orders placed by one rest from the next
    # tick on), and each stays `paper_filled` until its own fill closes it: a cancel that an earlier fill
    # causes (a failure stopping the bot) leaves it to its fill, as on an exchange that filled it first.
    messages = [paper_broker.fill_message(handle, fill, step.now, work.published_at) for fill in fills]
    handle.paper_filled.update(message.client_order_id for message in messages)
    for message in messages:
        step.inbox_claims.append((FILLS_QUEUE, message.message_id))
        apply_fill(step, message)
    step.paper_fills += len(messages)
    if work.published_at is not None:
        step.triggers.append(work.published_at)


def apply_fill(step: Step, message: OrderFilledMessage) -> None:
    """Apply one fill of one of the bot's orders (live or paper: every fill takes this path)."""
    handle = step.handle
    cid = message.client_order_id
    ref = handle.orders.get(cid)
    if ref is None or handle.core.open_order(cid) is None:
        log.info("fill %s of %s for an order no longer open; ignored", message.fill_id, cid)
        return
    if message.exchange_order_id and ref.exchange_order_id is None:
        ref.exchange_order_id = message.exchange_order_id
        if ref.status == NEW:
            ref.status = OPEN
        step.order_updates[cid] = ref
    event = OrderFilled(
        client_order_id=cid,
        qty=message.qty,
        price=message.price,
        fee=message.fee,
        fee_currency=message.fee_currency,
        fill_id=message.fill_id,
        is_final=message.is_final,
    )
    step.feed(event, executed_at=message.executed_at)
    if message.trigger_published_at is not None:
        step.triggers.append(message.trigger_published_at)


def _ack(step: Step, work: AckWork) -> None:
    ref = step.handle.orders.get(work.client_order_id)
    if ref is None or (ref.status != NEW and ref.exchange_order_id == work.exchange_order_id):
        return
    ref.exchange_order_id = work.exchange_order_id
    if ref.status == NEW:
        ref.status = OPEN
    step.order_updates[ref.client_order_id] = ref


async def _adopt(session: AsyncSession, step: Step, work: AdoptWork) -> None:
    """Take an unknown open order of ours into its slot when it is exactly the order the slot would rest."""
    handle, cid = step.handle, work.client_order_id
    core = handle.core
    state = core.state
    parsed = parse_client_order_id(cid)
    if core.open_order(cid) is not None or parsed is None or parsed.side is not work.side:
        return
    if state.phase is not Phase.RUNNING or not 0 <= parsed.slot < len(state.slots):
        return
    if work.side is Side.BUY and parsed.slot < state.low_slot:
        return  # trailing up retired the slot: it buys no more
    slot = state.slots[parsed.slot]
    levels = state.all_levels()
    expected = levels[parsed.slot] if work.side is Side.BUY else levels[parsed.slot + 1]
    if (
        slot.order is not None
        or work.price != expected
        or (work.side is Side.SELL and work.qty > slot.holding_qty)
    ):
        return
    snapshot = core.snapshot()
    stored = snapshot["slots"][parsed.slot]
    stored["order"] = OpenOrder(cid, work.side, work.price, work.qty).to_dict()
    stored["state"] = (SlotState.BUYING if work.side is Side.BUY else SlotState.SELLING).value
    stored["seq"] = max(int(stored["seq"]), parsed.seq)
    stored["blocked"] = None
    handle.core = GridBot.restore(snapshot)
    step.state_changed = True
    step.touch(parsed.slot)
    existing = (
        await session.execute(select(tables.ORDERS.c.id).where(tables.ORDERS.c.client_order_id == cid))
    ).scalar_one_or_none()
    ref = OrderRef(
        existing or uuid.uuid4(),
        cid,
        parsed.slot,
        work.side,
        work.price,
        work.qty,
        OPEN,
        work.exchange_order_id,
    )
    handle.orders[cid] = ref
    if existing is not None:
        step.order_updates[cid] = ref
        return
    step.order_inserts.append(
        {
            "id": ref.id,
            "bot_id": handle.id,
            "exchange": handle.row.exchange,
            "client_order_id": cid,
            "exchange_order_id": work.exchange_order_id,
            "slot": ref.slot,
            "side": ref.side.value,
            "price": ref.price,
            "quantity": ref.qty,
            "filled_quantity": ref.filled_qty,
            "status": OPEN,
            "created_at": step.now,
            "updated_at": step.now,
        }
    )


# --- commands -----------------------------------------------------------------------------------------------


async def _command(session: AsyncSession, step: Step, work: CommandWork) -> None:
    handle, command = step.handle, work.command
    row = await reads.load_row(session, handle.id, lock=True)
    if row is None:
        return
    handle.row = row
    if work.kind is BotEvent.START:
        await start(session, step, row, work.price)
    elif work.kind is BotEvent.STOP:
        handle.pending_start = False
        step.state_changed = True
        error = (row.error_message or STOPPED_WITH_ERROR) if command.status is WireStatus.ERROR else None
        reason = StopReason.USER
        if handle.halted and row.status == WireStatus.STOPPED.value and handle.core.state.stop_reason:
            # Stopped already (its keys were removed while this stop was on its way): it keeps its reason.
            reason = handle.core.state.stop_reason
        step.feed(Stop(error, reason=reason))
    elif work.kind is BotEvent.UPDATED:
        if command.config_version > handle.config_version:
            _configure(step, row)
    elif work.kind is BotEvent.DELETED:
        handle.pending_start = False
        step.state_changed = True
        if not handle.halted:
            step.feed(Stop())


def needs_resume(handle: BotHandle, row: BotRow | Asks | None = None) -> bool:
    """Whether the bot's row (as loaded, or `row`) asks for something its core has not done: a start never
    heard, a stop never applied, newer settings. Read without a lock; `ResumeWork` checks again under one."""
    row = row or handle.row
    if row.wants_running:
        return (handle.halted and not handle.pending_start) or row.config_version > handle.config_version
    stopping = row.stop_command_id is not None or row.deleted
    return stopping and (not handle.halted or row.status == WireStatus.RUNNING.value)


async def _resume(session: AsyncSession, step: Step, work: ResumeWork) -> None:
    """Do what the bot's row asks and the core has not done (its command went to a replica that did not
    own the bot, or to none): start it, stop it (confirming the pending stop command), or reconfigure it."""
    handle = step.handle
    row = await reads.load_row(session, handle.id, lock=True)
    if row is None:
        return
    handle.row = row
    if not needs_resume(handle):
        return
    if row.wants_running:
        if handle.halted and not handle.pending_start:
            await start(session, step, row, work.price)
        elif row.config_version > handle.config_version:
            _configure(step, row)
        return
    handle.pending_start = False
    step.state_changed = True
    error = (row.error_message or STOPPED_WITH_ERROR) if row.status == WireStatus.ERROR.value else None
    step.feed(Stop(error, reason=StopReason.USER))


async def _keys_gone(session: AsyncSession, step: Step, work: KeysGoneWork) -> None:
    """Halt a bot whose keys are gone: its orders are cancelled (while the old client lasts), then it stops."""
    handle = step.handle
    row = await reads.load_row(session, handle.id, lock=True)
    if row is None:
        return
    handle.row = row
    if handle.halted and row.status != WireStatus.RUNNING.value:
        return  # at rest already and meant to be: nothing to stop, no reason to overwrite
    handle.pending_start = False
    step.state_changed = True
    if work.note:
        handle.halt_note = work.note
    step.feed(Stop(reason=StopReason.CREDENTIAL_REMOVED))


_LISTED = 10


def _abandon(step: Step) -> None:
    """Forget the open orders of a halting bot whose keys are gone, telling the user which ones stay open."""
    handle = step.handle
    if handle.core.state.phase is not Phase.HALTING:
        return
    left = [
        handle.orders[o.client_order_id]
        for _, o in handle.core.open_orders()
        if o.client_order_id in handle.orders
    ]
    if left:
        shown = ", ".join(
            f"{ref.side.value} {ref.qty} at {ref.price} (order {ref.exchange_order_id or 'unconfirmed'}, "
            f"client id {ref.client_order_id})"
            for ref in left[:_LISTED]
        )
        more = f" and {len(left) - _LISTED} more" if len(left) > _LISTED else ""
        note = (
            f"The API keys for {handle.row.exchange} were removed before {len(left)} order(s) could be "
            f"cancelled; they may still be open on the exchange and must be cancelled there: {shown}{more}."
        )
        handle.halt_note = f"{handle.halt_note} {note}" if handle.halt_note else note
    step.state_changed = True
    step.feed(Abandon())
    for ref in left:
        # Their rows keep their last known status: the exchange may still have them (see docs/engine.md).
        handle.orders.pop(ref.client_order_id, None)
        handle.paper_filled.discard(ref.client_order_id)


def _configure(step: Step, row: BotRow) -> None:
    """Bring the core's order amount, stopAtMax, take-profit and stop-loss to the row's."""
    handle = step.handle
    state = handle.core.state
    amount = row.order_amount if row.order_amount != state.order_amount else None
    stop_at_max = row.stop_at_max if row.stop_at_max != state.stop_at_max else None
    stops = (row.take_profit_price, row.stop_loss_price)
    moved = stops != (state.config.take_profit_price, state.config.stop_loss_price)
    if amount is not None or stop_at_max is not None or moved:
        step.feed(ConfigChanged(order_amount=amount, stop_at_max=stop_at_max, stops=stops if moved else None))
    if handle.config_version != row.config_version:
        handle.config_version = row.config_version
        step.state_changed = True


async def start(session: AsyncSession, step: Step, row: BotRow, price: Decimal | None) -> None:
    """Start the bot if its row still says so: now with a price, once halted, or at the next tick."""
    handle = step.handle
    step.state_changed = True
    if not row.wants_running:
        handle.pending_start = False
        return
    phase = handle.core.state.phase
    if phase is Phase.RUNNING:
        handle.pending_start = False
        return
    if phase is Phase.HALTING:
        handle.pending_start = True  # the stop in progress ends first; the start follows it
        return
    levels = (await reads.load_levels(session, [row.id])).get(row.id, [])
    if not same_grid(handle.core, row, levels):
        if any(slot.holding_qty for slot in handle.core.state.slots):
            log.warning("bot %s: grid rebuilt; base held by the old grid's slots is no longer traded", row.id)
        handle.core = new_core(row, levels, handle.core)
    else:
        handle.core = with_options(handle.core, row)  # new options of a stopped bot (TP/SL: _configure)
    handle.levels = levels
    _configure(step, row)
    price = price or handle.core.state.last_price
    if price is None:
        handle.pending_start = True  # no price known yet: the next tick of the ticker starts it
        return
    handle.pending_start = False
    step.feed(Start(price))


async def complete_halt(session: AsyncSession, step: Step) -> None:
    """A halt ended: settle the pending stop command (confirming it), start again, or record the status."""
    done, step.halt_done = step.halt_done, None
    assert done is not None
    handle, now = step.handle, step.now
    handle.halt_note = None  # told with this status (done.error_message)
    row = await reads.load_row(session, handle.id, lock=True)
    if row is None:
        return
    handle.row = row
    reason = done.stop_reason.value if done.stop_reason is not None else None
    if row.stop_command_id is not None:
        await writes.write_status(
            session,
            row.id,
            done.status.value,
            done.error_message,
            now,
            stop_command_id=row.stop_command_id,
            stop_reason=reason,
        )
        step.outbox.append(outgoing.stopped_row(row.id, row.stop_command_id, row.config_version, now))
        return
    if handle.pending_start and row.wants_running:
        await start(session, step, row, None)
        return
    await writes.write_status(
        session, row.id, done.status.value, done.error_message, now, stop_command_id=None, stop_reason=reason
    )

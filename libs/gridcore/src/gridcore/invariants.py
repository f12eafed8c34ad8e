"""The core's invariants as a check a driver can run after restoring a snapshot (and tests after each event)."""

from __future__ import annotations

from decimal import Decimal, localcontext

from gridcore.machine import _CTX, GridBot
from gridcore.state import ZERO, Phase, Side, SlotState, Status


def violations(bot: GridBot, investment: Decimal | None = None) -> list[str]:
    """Every broken invariant of the bot's state, as messages (empty when sound).

    `investment` defaults to slot count × the current order amount; after the order amount was lowered,
    pass the old figure, since resting buys keep the size they were placed with. Trailing up included:
    open buys (a retired slot's buy until its cancel is confirmed too) never commit more than it, and a
    halted bot has neither a slot's order nor a market sell open.
    """
    state, rules = bot.state, bot.state.config.rules
    levels = state.all_levels()
    problems: list[str] = []
    with localcontext(_CTX):
        limit = investment if investment is not None else state.config.slot_count * state.order_amount
        committed = ZERO
        open_ids: set[str] = set()
        waiting = set(state.trail_waits.values())
        held = sum((slot.holding_qty for slot in state.slots), ZERO)
        for slot in state.slots:
            order = slot.order
            if slot.holding_qty < 0 or slot.holding_cost < 0:
                problems.append(f"slot {slot.index} holds a negative amount")
            if order is not None and not state.triggered:
                problems.append(f"slot {slot.index} has an order before the trigger")
            if order is not None and order.side is Side.BUY and not order.cancel_requested:
                if slot.index < state.low_slot:
                    problems.append(f"slot {slot.index} was retired by trailing but still buys")
                if slot.index in waiting:
                    problems.append(f"slot {slot.index} buys before the buy it replaces is closed")
            if order is None:
                if slot.state is not SlotState.IDLE:
                    problems.append(f"slot {slot.index} is {slot.state} without an order")
                continue
            if order.client_order_id in open_ids:
                problems.append(f"order id {order.client_order_id} is open twice")
            open_ids.add(order.client_order_id)
            if order.filled_qty > order.qty:
                problems.append(f"order {order.client_order_id} filled beyond its quantity")
            if order.side is Side.BUY:
                if slot.state is not SlotState.BUYING or order.price != levels[slot.index]:
                    problems.append(f"slot {slot.index}'s buy is not a buy at its lower level")
                fee = ZERO if rules.buy_fee_in_base else rules.buy_reserve_fee
                committed += order.remaining_qty * order.price * (1 + fee)
            else:
                if slot.state is not SlotState.SELLING or order.price != levels[slot.index + 1]:
                    problems.append(f"slot {slot.index}'s sell is not a sell at its upper level")
                if order.remaining_qty > slot.holding_qty:
                    problems.append(f"slot {slot.index} offers more than it holds")
        if len(state.slots) - state.low_slot != state.config.slot_count:
            problems.append("trailing changed the number of slots in the grid")
        if len(levels) != len(state.slots) + 1:
            problems.append("the slots do not match the levels")
        for retired, top in state.trail_waits.items():
            order = state.slots[retired].order
            if retired >= state.low_slot or order is None or order.side is not Side.BUY:
                problems.append(f"slot {top} waits for slot {retired}, which has no retired buy")
        market = state.market_sell
        if market is not None:
            if market.client_order_id in open_ids:
                problems.append(f"order id {market.client_order_id} is open twice")
            open_ids.add(market.client_order_id)
            if state.phase is not Phase.HALTING:
                problems.append("a market sell is open outside a halt")
            if market.remaining_qty > held:
                problems.append("the market sell offers more base than the slots hold")
        if committed > limit:
            problems.append(f"open buys commit {committed} {rules.quote}, above the investment {limit}")
        if state.phase is Phase.HALTED and open_ids:
            problems.append("the bot is at rest with open orders")
        if state.phase is Phase.RUNNING and state.status is not Status.RUNNING:
            problems.append(f"the bot trades with status {state.status}")
        if set(bot._by_cid) | ({market.client_order_id} if market is not None else set()) != open_ids:
            problems.append("the order-id index disagrees with the slots")
        buys = [s.index for s in state.slots if s.order is not None and s.order.side is Side.BUY]
        sells = [s.index for s in state.slots if s.order is not None and s.order.side is Side.SELL]
        if bot._buys != buys or bot._sells != sells:
            problems.append("the open-order indexes disagree with the slots")
        if bot._idle != sorted(set(bot._idle)):
            problems.append("the idle index is not sorted and unique")
        if any(state.slots[i].order is not None or state.slots[i].blocked for i in bot._idle):
            problems.append("an armable idle slot has an order or is blocked")
        if any(i < state.low_slot or i in waiting for i in bot._idle):
            problems.append("a retired or waiting slot is armable")
    return problems

"""The core's invariants as a check a driver can run after restoring a snapshot (and tests after each event)."""

from __future__ import annotations

from decimal import Decimal, localcontext

from gridcore.machine import _CTX, GridBot
from gridcore.state import ZERO, Phase, Side, SlotState, Status


def violations(bot: GridBot, investment: Decimal | None = None) -> list[str]:
    """Every broken invariant of the bot's state, as messages (empty when sound).

    `investment` defaults to slot count × the current order amount; after the order amount was lowered,
    pass the old figure, since resting buys keep the size they were placed with.
    """
    state, rules = bot.state, bot.state.config.rules
    levels = state.config.levels
    problems: list[str] = []
    with localcontext(_CTX):
        limit = investment if investment is not None else state.config.slot_count * state.order_amount
        committed = ZERO
        open_ids: set[str] = set()
        for slot in state.slots:
            order = slot.order
            if slot.holding_qty < 0 or slot.holding_cost < 0:
                problems.append(f"slot {slot.index} holds a negative amount")
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
        if committed > limit:
            problems.append(f"open buys commit {committed} {rules.quote}, above the investment {limit}")
        if state.phase is Phase.HALTED and open_ids:
            problems.append("the bot is at rest with open orders")
        if state.phase is Phase.RUNNING and state.status is not Status.RUNNING:
            problems.append(f"the bot trades with status {state.status}")
        if set(bot._by_cid) != open_ids:
            problems.append("the order-id index disagrees with the slots")
        buys = [s.index for s in state.slots if s.order is not None and s.order.side is Side.BUY]
        sells = [s.index for s in state.slots if s.order is not None and s.order.side is Side.SELL]
        if bot._buys != buys or bot._sells != sells:
            problems.append("the open-order indexes disagree with the slots")
        if bot._idle != sorted(set(bot._idle)):
            problems.append("the idle index is not sorted and unique")
        if any(state.slots[i].order is not None or state.slots[i].blocked for i in bot._idle):
            problems.append("an armable idle slot has an order or is blocked")
    return problems

"""Which prices concern a bot (`GridBot.watch()`), so a driver can skip the ticks that cannot act."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Watch:
    """Which prices concern a bot, so a cross-bot index can skip bots a tick does not cross.

    The first six are the plain grid's; the rest belong to the grid options and are None when off.
    """

    lowest_buy: Decimal | None
    highest_buy: Decimal | None
    lowest_sell: Decimal | None
    highest_sell: Decimal | None
    next_arm: Decimal | None  # an idle slot arms when a tick's high is strictly above this
    stop_price: Decimal | None  # stopAtMax: a tick whose high reaches this stops the bot
    take_profit: Decimal | None = None  # a tick whose high reaches this stops the bot
    stop_loss: Decimal | None = None  # a tick whose low reaches this stops the bot
    trigger_above: Decimal | None = None  # not yet triggered: a high at or over this triggers
    trigger_below: Decimal | None = None  # not yet triggered: a low at or under this triggers
    trail_at: Decimal | None = None  # trailing up: a high at or over this moves the grid up a step

    def crossed_by(self, low: Decimal, high: Decimal) -> bool:
        """True when a tick with this low/high can fill, arm or stop something of the bot."""
        return (
            (self.highest_buy is not None and low <= self.highest_buy)
            or (self.lowest_sell is not None and high >= self.lowest_sell)
            or self.acts_on(low, high)
        )

    def acts_on(self, low: Decimal, high: Decimal) -> bool:
        """True when the Tick itself must reach the core (it arms, stops, triggers or trails), fills aside."""
        return (
            (self.next_arm is not None and high > self.next_arm)
            or (self.stop_price is not None and high >= self.stop_price)
            or (self.take_profit is not None and high >= self.take_profit)
            or (self.stop_loss is not None and low <= self.stop_loss)
            or (self.trigger_above is not None and high >= self.trigger_above)
            or (self.trigger_below is not None and low <= self.trigger_below)
            or (self.trail_at is not None and high >= self.trail_at)
        )

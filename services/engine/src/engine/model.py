"""What the engine keeps in memory per loaded bot: its core, the rows it mirrors, and its counters.

Only the bot's shard mutates a handle, one batch at a time; a batch that fails to commit marks the handles
it touched stale, and the shard reloads them from the database before using them again.

A bot taken over may be held *dormant*: its row, its stored state (not restored) and the watch read off it
(`gridcore.dormant`), enough for the ticker index and the resume check; levels, orders and statistics are not
read. A dormant handle is stale, so its shard loads it whole before applying anything to it (see
docs/engine.md "Dormant paper bots at takeover").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from common.grid import MarketRules
from gridcore import GridBot, GridConfig, GridState, Phase, Side, Watch
from gridcore.dormant import has_open_orders, phase_of, watch_of

ZERO = Decimal(0)
STATE_FORMAT = 1


@dataclass(slots=True)
class OrderRef:
    """An order row the bot may still hear about (open at the exchange or not yet applied as closed)."""

    id: uuid.UUID
    client_order_id: str
    slot: int
    side: Side
    price: Decimal
    qty: Decimal
    status: str
    exchange_order_id: str | None = None
    filled_qty: Decimal = ZERO


@dataclass(slots=True)
class LevelView:
    """One grid_levels row as the engine last wrote it."""

    id: uuid.UUID
    index: int
    price: Decimal
    type: str
    status: str
    order_id: str | None
    filled_at: datetime | None
    active: bool = True  # false once trailing up moved the grid past it (and nothing rests there)

    def key(self) -> tuple[str, str, str | None, datetime | None, bool]:
        """What a change of the row is judged by."""
        return (self.type, self.status, self.order_id, self.filled_at, self.active)


@dataclass(slots=True)
class Stats:
    """The bot's trade figures (every trade of the bot, as the API computes them from `trades`)."""

    profit: Decimal = ZERO
    trades: int = 0
    last_executed_at: datetime | None = None


@dataclass(slots=True)
class BotRow:
    """The columns of a `bots` row the engine reads."""

    id: uuid.UUID
    user_id: uuid.UUID
    exchange: str
    ticker: str
    mode: str
    status: str
    error_message: str | None
    stop_command_id: str | None
    config_version: int
    order_amount: Decimal
    stop_at_max: bool
    upper_price: Decimal
    investment_amount: Decimal
    market_rules: dict[str, Any]
    deleted: bool
    # The grid options (API.md "Grid options"), as the bots service stored them.
    grid_type: str = "geometric"
    trigger_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    sell_base_on_stop: bool = False
    trailing_up: bool = False
    trailing_up_limit: Decimal | None = None
    triggered: bool = True

    @property
    def wants_running(self) -> bool:
        """The user's intent as the bots service recorded it: running with no stop pending."""
        return wants_running(self.status, self.stop_command_id, self.deleted)


@dataclass(slots=True, frozen=True)
class Asks:
    """What a bot's row asks of its core: the columns `needs_resume` compares, read without the rest (a
    sweep over every recently changed row only needs these; the full row is read for the few that differ)."""

    id: uuid.UUID
    status: str
    stop_command_id: str | None
    config_version: int
    deleted: bool

    @property
    def wants_running(self) -> bool:
        """The user's intent as the bots service recorded it: running with no stop pending."""
        return wants_running(self.status, self.stop_command_id, self.deleted)


def wants_running(status: str, stop_command_id: str | None, deleted: bool) -> bool:
    """Whether a row with these columns asks for its bot to run."""
    return status == "running" and stop_command_id is None and not deleted


@dataclass(slots=True, frozen=True)
class Dormant:
    """What a dormant handle knows of its core: the stored snapshot and what was read off it."""

    snapshot: dict[str, Any]
    watch: Watch | None  # None: no watch (halted with nothing open)
    phase: Phase


def dormant_of(snapshot: dict[str, Any]) -> Dormant | None:
    """The dormant form of a stored core snapshot, or None when only restoring it tells its watch."""
    watch = watch_of(snapshot)
    if watch is None:
        return None
    phase = phase_of(snapshot)
    watching = phase is not Phase.HALTED or has_open_orders(snapshot)
    return Dormant(snapshot, watch if watching else None, phase)


@dataclass(eq=False)
class BotHandle:
    """One loaded bot."""

    row: BotRow
    loaded_core: GridBot | None  # None while dormant: `core` restores it from the snapshot when first asked
    version: int  # engine_states.version as last committed (0: no row yet)
    config_version: int  # the bot config version the core reflects
    levels: list[LevelView]
    orders: dict[str, OrderRef] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)
    # Paper: orders the paper broker filled whose fill the core has not applied yet.
    paper_filled: set[str] = field(default_factory=set)
    # A start waiting for a price (no cached price) or for a stop in progress to end.
    pending_start: bool = False
    stale: bool = False
    watch: Watch | None = None  # what the ticker index holds for this bot
    # Told to the user with the status when the halt in progress ends (e.g. orders left at the exchange).
    halt_note: str | None = None
    # Set while dormant (levels, orders and stats unread; `stale` is set too, so its shard loads it whole).
    dormant: Dormant | None = None

    @property
    def core(self) -> GridBot:
        """The bot's core (a dormant one's restored from its snapshot on first use)."""
        if self.loaded_core is None:
            assert self.dormant is not None
            self.loaded_core = GridBot.restore(self.dormant.snapshot)
        return self.loaded_core

    @core.setter
    def core(self, core: GridBot) -> None:
        self.loaded_core = core

    @property
    def id(self) -> uuid.UUID:
        """The bot id."""
        return self.row.id

    @property
    def is_paper(self) -> bool:
        """Paper bots fill on ticks; live ones trade on the exchange."""
        return self.row.mode == "paper"

    @property
    def rules(self) -> MarketRules:
        """The exchange rules the grid was built with."""
        return self.core.state.config.rules

    @property
    def halted(self) -> bool:
        """No order open and none to wait for."""
        if self.loaded_core is None and self.dormant is not None:
            return self.dormant.phase is Phase.HALTED
        return self.core.state.phase is Phase.HALTED

    def snapshot(self) -> dict[str, Any]:
        """What engine_states.state holds: the core snapshot and the config version it reflects."""
        return {
            "format": STATE_FORMAT,
            "config_version": self.config_version,
            "pending_start": self.pending_start,
            "core": self.core.snapshot(),
        }


def restore_core(state: dict[str, Any]) -> tuple[GridBot, int, bool]:
    """The core, config version and pending start of a stored engine state."""
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"unsupported engine state format {state.get('format')!r}")
    return GridBot.restore(state["core"]), int(state["config_version"]), bool(state.get("pending_start"))


def grid_config(row: BotRow, levels: tuple[Decimal, ...]) -> GridConfig:
    """The core's configuration of the bot's row over these configured levels (options included)."""
    return GridConfig(
        bot_id=str(row.id),
        levels=levels,
        upper_price=row.upper_price,
        rules=MarketRules.from_dict(row.market_rules),
        trigger_price=row.trigger_price,
        take_profit_price=row.take_profit_price,
        stop_loss_price=row.stop_loss_price,
        sell_base_on_stop=row.sell_base_on_stop,
        trailing_up=row.trailing_up,
        trailing_up_limit=row.trailing_up_limit,
        kind="arithmetic" if row.grid_type == "arithmetic" else "geometric",
    )


def new_core(row: BotRow, levels: list[LevelView], previous: GridBot | None) -> GridBot:
    """A stopped core over the bot's current grid; its epoch continues the previous core's (ids never repeat).

    A trigger that fired stays fired over a rebuilt grid while its price is unchanged (as the bots service
    keeps `triggered`): a new range does not make a bot wait again for a price it already reached.
    """
    config = grid_config(row, tuple(level.price for level in levels))
    epoch = previous.state.epoch if previous is not None else 0
    state = GridState.initial(config, row.order_amount, row.stop_at_max, epoch)
    if previous is not None and previous.state.config.trigger_price == config.trigger_price:
        state.triggered = previous.state.triggered or config.trigger_price is None
    return GridBot(state)


def same_grid(core: GridBot, row: BotRow, levels: list[LevelView]) -> bool:
    """True when the core was built over exactly this grid: its levels (trailing's included) and rules."""
    state = core.state
    return state.all_levels() == tuple(level.price for level in levels) and state.config.rules == (
        MarketRules.from_dict(row.market_rules)
    )


def with_options(core: GridBot, row: BotRow) -> GridBot:
    """The core with the row's grid options (a stopped bot's: they change only while it is stopped).

    The same core when nothing changed; else one restored from its snapshot with the new options, so its
    slots keep what they hold. A new trigger price waits again (`triggered` false), as the bots service
    records it.
    """
    config = core.state.config
    wanted = grid_config(row, config.levels)
    if wanted == config:
        return core
    snapshot = core.snapshot()
    snapshot["config"] = wanted.to_dict()
    if wanted.trigger_price != config.trigger_price:
        snapshot["triggered"], snapshot["trigger_above"] = wanted.trigger_price is None, None
    return GridBot.restore(snapshot)

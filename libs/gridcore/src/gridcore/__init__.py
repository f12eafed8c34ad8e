"""The pure grid engine core: a deterministic state machine (events in, commands out, no I/O).

The live engine, the paper broker and the backtester all drive `GridBot.handle`; `paper` is the fill
model the latter two share. State is plain data (`GridBot.snapshot()` / `GridBot.restore()`).
`gridcore.replay` is the backtest kernel: a grid replayed over candles as a paper bot trades them.
"""

from gridcore.codec import command_from_dict, command_to_dict, event_from_dict, event_to_dict
from gridcore.commands import (
    CancelOrder,
    Command,
    PlaceOrder,
    RecordTrade,
    SellMarket,
    SetStatus,
    SlotChanged,
)
from gridcore.events import (
    Abandon,
    ConfigChanged,
    Event,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    Start,
    Stop,
    Tick,
)
from gridcore.ids import MARKET_SLOT, bot_prefix, client_order_id, market_order_id, parse_client_order_id
from gridcore.invariants import violations
from gridcore.machine import MONEY_QUANTUM, GridBot, Watch
from gridcore.paper import (
    PaperStep,
    apply,
    crossed_fills,
    market_fill,
    paper_fill,
    simulate_tick,
    tick_path,
)
from gridcore.state import (
    GridConfig,
    GridState,
    OpenOrder,
    Phase,
    Side,
    Slot,
    SlotState,
    Status,
    StopReason,
)

__all__ = [
    "MARKET_SLOT",
    "MONEY_QUANTUM",
    "Abandon",
    "CancelOrder",
    "Command",
    "ConfigChanged",
    "Event",
    "GridBot",
    "GridConfig",
    "GridState",
    "OpenOrder",
    "OrderCanceled",
    "OrderFilled",
    "OrderRejected",
    "PaperStep",
    "Phase",
    "PlaceOrder",
    "RecordTrade",
    "SellMarket",
    "SetStatus",
    "Side",
    "Slot",
    "SlotChanged",
    "SlotState",
    "Start",
    "Status",
    "Stop",
    "StopReason",
    "Tick",
    "Watch",
    "apply",
    "bot_prefix",
    "client_order_id",
    "command_from_dict",
    "command_to_dict",
    "crossed_fills",
    "event_from_dict",
    "event_to_dict",
    "market_fill",
    "market_order_id",
    "paper_fill",
    "parse_client_order_id",
    "simulate_tick",
    "tick_path",
    "violations",
]

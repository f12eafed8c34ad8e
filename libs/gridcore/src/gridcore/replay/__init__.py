"""The backtest kernel: a grid replayed over 1-minute candles exactly as a paper bot would trade them.

Pure (no I/O). `replay_reference` drives the core through every simulated trade; `replay` gives the same
Replay visiting only the candles where something can happen; `figures` turns a Replay into API.md's
backtest result; `sweep` runs many specs over the same candles on a process pool. docs/backtest.md.
"""

from gridcore.paper import crossed_fills
from gridcore.replay.broker import PaperBroker
from gridcore.replay.candles import MINUTE_MS, CandleSeries
from gridcore.replay.fast import replay
from gridcore.replay.figures import BacktestFigures, DailyFigure, EquityPoint, figures, percent
from gridcore.replay.reference import replay_reference
from gridcore.replay.sweep import sweep
from gridcore.replay.types import TICK_OFFSETS_MS, Replay, ReplaySpec, Trade

__all__ = [
    "MINUTE_MS",
    "TICK_OFFSETS_MS",
    "BacktestFigures",
    "CandleSeries",
    "DailyFigure",
    "EquityPoint",
    "PaperBroker",
    "Replay",
    "ReplaySpec",
    "Trade",
    "crossed_fills",
    "figures",
    "percent",
    "replay",
    "replay_reference",
    "sweep",
]

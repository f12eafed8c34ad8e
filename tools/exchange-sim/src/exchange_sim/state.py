"""Everything one simulator instance holds, built from its settings."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from exchange_sim.accounts import AccountStore
from exchange_sim.events import Hub
from exchange_sim.faults import FaultInjector
from exchange_sim.markets import Venue, default_markets
from exchange_sim.matching import Fees, MatchingEngine
from exchange_sim.prices import PriceFeed, load_candles_csv
from exchange_sim.replay import Replayer
from exchange_sim.requests import RequestCounter
from exchange_sim.series import CandleTable
from exchange_sim.settings import DEFAULT_HISTORY_MINUTES, SimSettings
from exchange_sim.wsconn import ConnectionRegistry

log = logging.getLogger(__name__)


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (the simulator's clock; exchanges stamp real time)."""
    return time.time_ns() // 1_000_000


@dataclass
class SimState:
    """The accounts, engines, price replay, faults and open WebSockets of one simulator."""

    settings: SimSettings
    accounts: AccountStore
    hub: Hub
    engines: dict[Venue, MatchingEngine]
    feed: PriceFeed
    replayer: Replayer
    faults: FaultInjector = field(default_factory=FaultInjector)
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)
    requests: RequestCounter = field(default_factory=RequestCounter)
    started_ms: int = field(default_factory=now_ms)

    @classmethod
    def build(cls, settings: SimSettings) -> SimState:
        """A fresh simulator: history seeded, replay not yet running."""
        markets = default_markets(settings.upbit_min_total)
        btc_candles: CandleTable | None = None
        candle_file = settings.resolved_candle_file()
        if candle_file is not None:
            try:
                btc_candles = load_candles_csv(candle_file)
                log.info("replaying %s (%d candles)", candle_file, len(btc_candles))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("cannot read candle file %s (%s); BTC follows a random walk", candle_file, exc)
        else:
            log.warning("no candle file found; BTC follows a seeded random walk")
        history = settings.history_minutes or DEFAULT_HISTORY_MINUTES
        if btc_candles is not None and history > len(btc_candles):
            # Thirty days (the default, compose's too) of a shorter file is the whole file, as meant.
            report = log.info if history == DEFAULT_HISTORY_MINUTES else log.warning
            report(
                "SIM_HISTORY_MINUTES=%d is more than the %d candles of %s: the history is the whole file",
                history,
                len(btc_candles),
                candle_file,
            )
            history = len(btc_candles)
        feed = PriceFeed(markets, settings.seed, settings.krw_rate, btc_candles)
        accounts = AccountStore()
        hub = Hub()
        ratio = settings.partial_fill_ratio if settings.partial_fills else None
        engines: dict[Venue, MatchingEngine] = {
            "upbit": MatchingEngine(
                "upbit",
                markets["upbit"],
                Fees(settings.upbit_fee, settings.upbit_fee, quote_only=True),
                accounts,
                hub,
                now_ms,
                ratio,
                ticker_interval_ms=0,
            ),
            "binance": MatchingEngine(
                "binance",
                markets["binance"],
                Fees(settings.binance_maker_fee, settings.binance_taker_fee, quote_only=False),
                accounts,
                hub,
                now_ms,
                ratio,
                ticker_interval_ms=settings.ticker_interval_ms,
            ),
        }
        replayer = Replayer(feed, engines, history, settings.replay_speed, now_ms)
        started = time.perf_counter()
        replayer.seed_history()
        log.info("history: %d minutes per market, seeded in %.2f s", history, time.perf_counter() - started)
        return cls(settings, accounts, hub, engines, feed, replayer)

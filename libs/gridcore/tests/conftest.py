"""Market rules and grids the engine core tests share."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from common.grid import MarketRules, plan_grid
from common.testing.shared import shared_file
from gridcore import GridConfig


@pytest.fixture(scope="session")
def upbit() -> MarketRules:
    """Upbit KRW-BTC: KRW price units, 8-decimal volumes, 0.05 % fee in KRW both ways."""
    return MarketRules.upbit_krw(base="BTC")


@pytest.fixture(scope="session")
def binance() -> MarketRules:
    """Binance BTCUSDT from the recorded exchangeInfo (tick 0.01, step 0.00001, min notional 5)."""
    path = shared_file("wire", "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json")
    info: dict[str, Any] = json.loads(path.read_text())
    market = {"id": "BTCUSDT", "base": "BTC", "quote": "USDT", "maker": 0.001, "taker": 0.001, "info": info}
    return MarketRules.from_ccxt_market(market)


@pytest.fixture(scope="session")
def upbit_config(upbit: MarketRules) -> GridConfig:
    """API.md's example grid: 50,000,000–70,000,000 KRW at 2 % (16 slots)."""
    plan = plan_grid(Decimal(50_000_000), Decimal(70_000_000), Decimal(2), Decimal(10_000), upbit)
    return GridConfig(bot_id="bot-upbit", levels=plan.levels, upper_price=Decimal(70_000_000), rules=upbit)


@pytest.fixture(scope="session")
def binance_config(binance: MarketRules) -> GridConfig:
    """BTCUSDT 90,000–110,000 at 1 % (20 slots)."""
    plan = plan_grid(Decimal(90_000), Decimal(110_000), Decimal(1), Decimal(20), binance)
    return GridConfig(bot_id="bot-binance", levels=plan.levels, upper_price=Decimal(110_000), rules=binance)

"""Market rules the grid tests share: Binance BTCUSDT from the recorded exchangeInfo, Upbit KRW-BTC."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.grid import MarketRules
from common.testing.shared import shared_file


def _btcusdt_info() -> dict[str, Any]:
    path = shared_file("wire", "binance_exchangeInfo_symbol_BTCUSDT_ccxt.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="session")
def btcusdt_info() -> dict[str, Any]:
    """The real exchangeInfo entry of BTCUSDT (ccxt's recorded fixture)."""
    return _btcusdt_info()


@pytest.fixture(scope="session")
def btcusdt_market(btcusdt_info: dict[str, Any]) -> dict[str, Any]:
    """A ccxt market structure around it, shaped as ccxt 4 builds it (TICK_SIZE precision, float limits)."""
    return {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "spot": True,
        "maker": 0.001,
        "taker": 0.001,
        "precision": {"price": 0.01, "amount": 1e-05},
        "limits": {
            "amount": {"min": 1e-05, "max": 9000.0},
            "price": {"min": 0.01, "max": 1000000.0},
            "cost": {"min": 5.0, "max": 9000000.0},
        },
        "info": btcusdt_info,
    }


@pytest.fixture(scope="session")
def binance(btcusdt_market: dict[str, Any]) -> MarketRules:
    """Rules of Binance BTCUSDT."""
    return MarketRules.from_ccxt_market(btcusdt_market)


@pytest.fixture(scope="session")
def upbit() -> MarketRules:
    """Rules of Upbit KRW-BTC."""
    return MarketRules.upbit_krw(base="BTC")

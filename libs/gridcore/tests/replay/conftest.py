"""Candles the replay tests share: the real December 2024 minutes, and hand-made series."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal

import pytest

from common.testing.shared import shared_file
from gridcore.replay import CandleSeries

CANDLE_FILE = ("data", "binance_BTCUSDT_1m_2024-12.csv")
# 2024-12-01T00:00:00Z
DAY_START = 1_733_011_200_000
MINUTE = 60_000

Row = tuple[int | str | Decimal, int | str | Decimal, int | str | Decimal, int | str | Decimal]


def series(rows: Sequence[Row], start: int = DAY_START) -> CandleSeries:
    """Consecutive minutes from `start`, each (open, high, low, close)."""
    return CandleSeries.from_rows((start + i * MINUTE, *row) for i, row in enumerate(rows))


@pytest.fixture(scope="session")
def month() -> CandleSeries:
    """The shared file: 41,761 BTC/USDT minutes, 2024-11-30 23:00 to 2024-12-29 23:00 UTC."""
    with shared_file(*CANDLE_FILE).open(newline="") as handle:
        return CandleSeries.from_csv_rows(csv.DictReader(handle))

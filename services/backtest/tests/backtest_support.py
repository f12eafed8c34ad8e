"""What the backtest tests share: a grid body over the simulator's recent past, posting it, awaiting the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from common.testing.service import User, exact_json
from common.testing.wait import eventually
from common.web import dumps

D = Decimal
HOURS = 6


def grid_body(**overrides: Any) -> dict[str, Any]:
    """A Binance BTCUSDT grid around the simulator's December 2024 prices, over the last HOURS hours."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    body: dict[str, Any] = {
        "exchange": "binance",
        "ticker": "BTCUSDT",
        "lowerPrice": 90000,
        "upperPrice": 106000,
        "priceChangePercent": D("0.3"),
        "orderAmount": 20,
        "startDate": (now - timedelta(hours=HOURS)).isoformat(),
        "endDate": now.isoformat(),
    }
    body.update(overrides)
    return body


def post(client: httpx.AsyncClient, user: User, body: dict[str, Any], path: str = "/api/backtests") -> Any:
    """POST a body with its decimals as exact JSON numbers."""
    return client.post(path, content=dumps(body), headers={**user.auth, "Content-Type": "application/json"})


async def finished(
    client: httpx.AsyncClient, user: User, backtest_id: str, within: float = 60
) -> dict[str, Any]:
    """The backtest once it is done or failed (polled with a deadline)."""
    seen: dict[str, Any] = {}

    async def settled() -> bool:
        response = await client.get(f"/api/backtests/{backtest_id}", headers=user.auth)
        seen.update(exact_json(response)["data"])
        return seen["status"] in ("done", "failed")

    await eventually(settled, timeout=within, interval=0.1, message=f"backtest {backtest_id} never finished")
    return seen

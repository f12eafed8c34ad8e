"""Exchange REST calls are counted by exchange, endpoint template and outcome, with their latency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from common import metrics
from common.exchanges import Exchange, PermanentExchangeError, classify


def calls(outcome: str, kind: str) -> float:
    total = 0.0
    for family in metrics.EXCHANGE_CALLS.collect():
        for s in family.samples:
            labels = s.labels
            if (
                s.name.endswith("_total")
                and labels["exchange"] == "upbit"
                and (labels["outcome"], labels["kind"]) == (outcome, kind)
            ):
                total += s.value
    return total


async def test_calls_are_counted_ok_and_by_their_permanent_error_kind(
    ccxt_client: Callable[..., Any],
) -> None:
    ok_before, refused_before = calls("ok", ""), calls("permanent", "authentication")
    await ccxt_client(Exchange.UPBIT).load_markets()
    assert calls("ok", "") > ok_before
    client = ccxt_client(Exchange.UPBIT, {"apiKey": "A" * 32, "secretKey": "B" * 32})
    with pytest.raises(Exception) as info:
        await client.fetch_balance()
    assert isinstance(classify(info.value), PermanentExchangeError)
    assert calls("permanent", "authentication") == refused_before + 1
    endpoints = {
        s.labels["endpoint"]
        for family in metrics.EXCHANGE_DURATION.collect()
        for s in family.samples
        if s.labels.get("exchange") == "upbit"
    }
    # ccxt's path templates, never a URL with ids or query strings.
    assert endpoints and all(" " in e and "?" not in e and "://" not in e for e in endpoints)

"""The socket's JSON: decimals that travel the bus as text arrive as exact JSON numbers."""

from __future__ import annotations

import json
from decimal import Decimal

from gateway.live.wire import event_texts


def test_decimals_reach_the_socket_digit_for_digit() -> None:
    trade = {
        "_id": "t1",
        "type": "sell",
        "price": 95123,
        "amount": "0.00010512",
        "total": "9.99933",
        "fee": "0.00999933",
        "profit": "0.123456789012345678",
    }
    stats = {
        "type": "bot_stats",
        "botId": "b1",
        "currentProfit": "1.000000000000000001",
        "profitPercent": "0.5",
    }
    texts = event_texts([{"type": "trade", "botId": "b1", "trade": trade}, stats], "b1")
    sent = [json.loads(text, parse_float=Decimal) for text in texts]
    assert sent[0]["side"] == "sell" and sent[0]["type"] == "trade"
    assert sent[0]["profit"] == Decimal("0.123456789012345678")  # 18 digits: a float would keep ~16
    assert (sent[0]["price"], sent[0]["amount"]) == (95123, Decimal("0.00010512"))
    assert '"currentProfit":1.000000000000000001' in texts[1]
    assert sent[1]["profitPercent"] == Decimal("0.5")


def test_a_value_that_is_no_decimal_is_forwarded_as_it_came() -> None:
    (text,) = event_texts([{"type": "bot_stats", "botId": "b1", "currentProfit": "n/a"}], "b1")
    assert json.loads(text)["currentProfit"] == "n/a"

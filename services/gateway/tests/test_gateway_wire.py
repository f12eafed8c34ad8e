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


def test_a_backtest_event_reaches_the_socket_with_its_own_fields_and_no_bot() -> None:
    from common.contracts.events import BacktestEvent

    element = BacktestEvent(backtest_id="b-1", status="running", progress=40).model_dump(
        mode="json", by_alias=True
    )
    (text,) = event_texts([{**element, "extra": "dropped"}], None)
    assert json.loads(text) == {"type": "backtest", "backtestId": "b-1", "status": "running", "progress": 40}


def test_a_bot_event_in_a_message_without_a_bot_is_not_forwarded() -> None:
    assert event_texts([{"type": "bot_status", "status": "running"}], None) == []

"""Every frame kind we read, parsed from the exchanges' real messages in shared/wire."""

from __future__ import annotations

import orjson
import pytest

from common.exchanges.ids import Exchange
from market_data.backfill import Backfiller
from market_data.conflate import Conflator
from market_data.streams.base import Connection, StreamOptions
from market_data.streams.binance import BinanceStream, change_percent, parse_binance, streams_of
from market_data.streams.events import AckEvent, ErrorEvent, StatsEvent, StatusEvent, TradeEvent
from market_data.streams.upbit import UpbitStream, parse_upbit
from market_data.testing import Wire


def test_binance_trade(wire: Wire) -> None:
    event = parse_binance(wire.json("binance_ws_trade.json"))
    assert event == TradeEvent("BNBBTC", 12345, 0.001, "0.001", "100", 1672515782136)


def test_binance_trade_in_a_combined_stream_wrapper(wire: Wire) -> None:
    wrapped = {"stream": "bnbbtc@trade", "data": wire.json("binance_ws_trade.json")}
    assert parse_binance(wrapped) == parse_binance(wire.json("binance_ws_trade.json"))


def test_binance_mini_ticker(wire: Wire) -> None:
    event = parse_binance(wire.json("binance_ws_miniTicker.json"))
    # open 0.0010 -> close 0.0025 is +150 %; v is the base volume.
    assert event == StatsEvent("BNBBTC", "150.00", "10000", 1672515782136)


def test_binance_subscription_answers(wire: Wire) -> None:
    request = wire.json("binance_ws_subscribe_request.json")
    assert set(request) == {"method", "params", "id"}
    assert parse_binance(wire.json("binance_ws_subscribe_response.json")) == AckEvent(1, None)
    assert parse_binance({"error": {"code": 2, "msg": "Invalid request"}, "id": 7}) == AckEvent(
        7, "Invalid request"
    )
    assert parse_binance({"code": 2, "msg": "Invalid request", "id": 8}) == AckEvent(8, "Invalid request")
    assert parse_binance({"code": 3, "msg": "Invalid JSON"}) == ErrorEvent("3", "Invalid JSON")


def test_binance_streams_we_do_not_read_are_ignored(wire: Wire) -> None:
    for name in ("binance_ws_aggTrade.json", "binance_ws_bookTicker.json", "binance_ws_kline.json"):
        assert parse_binance(wire.json(name)) is None


def test_binance_stream_names_and_change() -> None:
    assert streams_of("BTCUSDT") == ["btcusdt@trade", "btcusdt@miniTicker"]
    assert change_percent("100", "97.5") == "-2.50"
    assert change_percent("0", "1") is None


@pytest.mark.parametrize("name", ["upbit_ws_trade_default_doc_2023.json"])
def test_upbit_trade_default(wire: Wire, name: str) -> None:
    event = parse_upbit(wire.json(name))
    assert event == TradeEvent(
        "KRW-BTC", 1676965220395000, 32292000.0, "32292000", "0.03096742", 1676965220395
    )


def test_upbit_trade_default_stream(wire: Wire) -> None:
    events = [parse_upbit(msg) for msg in wire.ndjson("upbit_ws_trade_default_doc_2026.ndjson")]
    assert events == [
        TradeEvent("KRW-BTC", 17877285547970000, 109847000.0, "109847000.0", "0.00509799", 1787728554797),
        TradeEvent("KRW-ETH", 17877285516960000, 3427000.0, "3427000.0", "0.00883869", 1787728551696),
    ]


def test_upbit_trade_simple_with_the_legacy_market_key(wire: Wire) -> None:
    events = [parse_upbit(msg) for msg in wire.ndjson("upbit_ws_trade_simple_stream_2018.ndjson")]
    assert [type(e) for e in events] == [TradeEvent] * 3
    first = events[0]
    assert isinstance(first, TradeEvent)
    assert (first.ticker, first.trade_id, first.price, first.qty, first.ts) == (
        "KRW-BTC",
        1523531768829000,
        "7691000.0",
        "0.00996719",
        1523531763000,
    )
    assert [e.ticker for e in events if isinstance(e, TradeEvent)] == ["KRW-BTC", "BTC-BCH", "KRW-BTC"]


def test_upbit_ticker_default(wire: Wire) -> None:
    assert parse_upbit(wire.json("upbit_ws_ticker_default_doc_2023.json")) == StatsEvent(
        "KRW-BTC", "1.27", "7158.8028356", 1676965262139
    )


def test_upbit_ticker_stream_with_exponent_zero(wire: Wire) -> None:
    # The second frame carries "change_price":0E-8 and "signed_change_rate":0, as Upbit really sends.
    events = [
        parse_upbit(orjson.loads(raw)) for raw in wire.raw_lines("upbit_ws_ticker_default_stream_2025.ndjson")
    ]
    assert events == [
        StatsEvent("KRW-BTC", "0.00", "2083.82485091", 1758875205145),
        StatsEvent("KRW-BTC", "0.00", "2083.83396972", 1758875206936),
    ]


def test_upbit_legacy_ticker_without_type(wire: Wire) -> None:
    events = [parse_upbit(msg) for msg in wire.ndjson("upbit_ws_ticker_default_stream_2018.ndjson")]
    assert events[0] == StatsEvent("KRW-BTC", "2.12", "6448.96200341", 1524046049000)
    assert len(events) == 2


def test_upbit_ticker_simple(wire: Wire) -> None:
    # A complete SIMPLE frame (from Bithumb's docs: Upbit's format, Upbit's abbreviations).
    frame = wire.json("bithumb_ws_ticker_simple_doc_2024.json")
    assert parse_upbit(frame) == StatsEvent("KRW-BTC", "1.78", "13501.26687512", 1725927582096)
    keys = wire.json("upbit_ws_simple_field_map_from_docs.json")["ticker"]
    assert {keys["signed_change_rate"], keys["acc_trade_volume_24h"], keys["trade_timestamp"]} <= set(frame)


def test_upbit_trade_simple_keys_follow_the_documented_map(wire: Wire) -> None:
    keys = wire.json("upbit_ws_simple_field_map_from_docs.json")["trade"]
    default = wire.json("upbit_ws_trade_default_doc_2023.json")
    simple = {keys.get(k, k): v for k, v in default.items()}
    assert parse_upbit(simple) == parse_upbit(default)


def test_upbit_status_and_error(wire: Wire) -> None:
    assert parse_upbit(wire.json("upbit_ws_status_up.json")) == StatusEvent("UP")
    assert parse_upbit(wire.json("upbit_ws_error.json")) == ErrorEvent(
        "INVALID_AUTH", "인증 정보가 올바르지 않습니다."
    )


def test_upbit_request_has_the_documented_shape(wire: Wire) -> None:
    documented = wire.json("upbit_ws_request_ticker.json")
    stream = UpbitStream("ws://unused", Conflator(100, _never, "e"), _backfiller(), StreamOptions())
    request = stream.request(["KRW-BTC", "KRW-ETH"])
    assert [set(item) for item in request[:1]] == [set(item) for item in documented[:1]]
    assert request[1:3] == [
        {"type": "trade", "codes": ["KRW-BTC", "KRW-ETH"]},
        {"type": "ticker", "codes": ["KRW-BTC", "KRW-ETH"]},
    ]
    assert request[3] == documented[2]


async def _never(tick: object) -> None:
    raise AssertionError("nothing is published here")


def _backfiller() -> Backfiller:
    return Backfiller.__new__(Backfiller)


class _Ws:
    async def send(self, data: str) -> None:
        raise AssertionError("nothing is sent here")


def test_binary_frames_and_lists_reach_the_conflator(wire: Wire) -> None:
    conflator = Conflator(100, _never, "e")
    stream = UpbitStream("ws://unused", conflator, _backfiller(), StreamOptions())
    book = conflator.book(Exchange.UPBIT, "KRW-BTC")
    conflator.book(Exchange.UPBIT, "KRW-ETH")
    conn = Connection(_Ws())  # type: ignore[arg-type]
    frames = wire.raw_lines("upbit_ws_trade_default_doc_2026.ndjson")
    stream.handle(conn, frames[0])  # binary JSON, as Upbit sends every frame
    stream.handle(conn, b"[" + frames[1] + b"]")  # JSON_LIST
    stream.handle(conn, wire.path("upbit_ws_ticker_default_doc_2023.json").read_bytes())
    assert conflator.trades == 2
    assert (book.newest_raw, book.last_trade_id, book.change_pct, book.volume_24h) == (
        "109847000.0",
        17877285547970000,
        "1.27",
        "7158.8028356",
    )
    binance = Conflator(100, _never, "e")
    bstream = BinanceStream("ws://unused", binance, _backfiller(), StreamOptions())
    bbook = binance.book(Exchange.BINANCE, "BNBBTC")
    bstream.handle(conn, wire.path("binance_ws_trade.json").read_text())
    bstream.handle(conn, wire.path("binance_ws_trade.json").read_text())  # the same trade again
    assert (binance.trades, binance.duplicates, bbook.newest_raw) == (1, 1, "0.001")

"""Binance stream payloads and the WebSocket API, checked against the real messages in shared/wire."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp
import websockets

from exchange_sim import SimSettings, running_sim
from exchange_sim.testing import recv_frame, recv_json, recv_until, shape, wait_for_topic


async def test_raw_trade_stream_matches_binance(sim, http, wire, set_price) -> None:
    async with websockets.connect(f"{sim.ws_url}/binance/ws/btcusdt@trade") as ws:
        await wait_for_topic(http, "binance:btcusdt@trade")
        await set_price("binance", "BTCUSDT", "100200.5")
        frame = await recv_frame(ws)
        assert isinstance(frame, str), "Binance sends text frames"
        trade = json.loads(frame)
        assert shape(trade) == shape(wire.json("binance_ws_trade.json"))
        assert (trade["e"], trade["s"], trade["p"]) == ("trade", "BTCUSDT", "100200.50000000")


async def test_combined_stream_wraps_mini_ticker_and_book_ticker(sim, http, wire, set_price) -> None:
    url = f"{sim.ws_url}/binance/stream?streams=ethusdt@miniTicker/ethusdt@bookTicker"
    async with websockets.connect(url) as ws:
        await wait_for_topic(http, "binance:ethusdt@bookTicker")
        await set_price("binance", "ETHUSDT", "3800.12")
        frames = {f["stream"]: f for f in [await recv_json(ws), await recv_json(ws)]}
        assert set(frames) == {"ethusdt@miniTicker", "ethusdt@bookTicker"}
        assert all(set(f) == {"stream", "data"} for f in frames.values())
        mini = frames["ethusdt@miniTicker"]["data"]
        book = frames["ethusdt@bookTicker"]["data"]
        assert shape(mini) == shape(wire.json("binance_ws_miniTicker.json"))
        assert shape(book) == shape(wire.json("binance_ws_bookTicker.json"))
        assert mini["c"] == "3800.12000000" and mini["e"] == "24hrMiniTicker"
        assert book["b"] <= "3800.12000000" <= book["a"]


async def test_subscribe_unsubscribe_and_list(sim, http, wire, set_price) -> None:
    request = wire.json("binance_ws_subscribe_request.json")  # btcusdt@aggTrade + btcusdt@depth, id 1
    async with websockets.connect(f"{sim.ws_url}/binance/ws") as ws:
        await ws.send(json.dumps(request))
        assert await recv_json(ws) == wire.json("binance_ws_subscribe_response.json")
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["solusdt@ticker"], "id": 2}))
        assert await recv_json(ws) == {"result": None, "id": 2}
        await set_price("binance", "BTCUSDT", "100300")
        agg = await recv_json(ws)
        assert shape(agg) == shape(wire.json("binance_ws_aggTrade.json"))
        await set_price("binance", "SOLUSDT", "240")
        ticker = await recv_json(ws)
        assert shape(ticker) == shape(wire.json("binance_ws_ticker.json"))
        assert ticker["c"] == "240.00000000"
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 3}))
        assert await recv_json(ws) == {"result": None, "id": 3}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert await recv_json(ws) == {"result": ["btcusdt@depth", "solusdt@ticker"], "id": 4}
        await ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 5}))
        assert await recv_json(ws) == {"result": False, "id": 5}
        await ws.send(json.dumps({"method": "NOPE", "id": 6}))
        error = await recv_json(ws)
        assert error["code"] == 2 and error["id"] == 6


def _signed(params: dict[str, object], secret: str) -> dict[str, object]:
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()}


async def test_user_data_stream_execution_reports(sim, http, wire, clients, new_account, set_price) -> None:
    await set_price("binance", "BTCUSDT", "100000")
    keys = await new_account(USDT=10000)
    exchange = clients("binance", keys)
    request = wire.json("binance_wsapi_userDataStream_subscribe_request.json")
    request["method"] = "userDataStream.subscribe.signature"  # the HMAC variant of the request
    request["params"] = _signed(
        {"apiKey": keys["apiKey"], "timestamp": int(time.time() * 1000)}, keys["secretKey"]
    )
    sample_event = wire.json("binance_userdata_executionReport.json")
    async with websockets.connect(f"{sim.ws_url}/binance/ws-api/v3") as ws:
        await ws.send(json.dumps(request))
        response = await recv_json(ws)
        expected = wire.json("binance_wsapi_userDataStream_subscribe_response.json")
        assert set(expected) <= set(response) and response["id"] == expected["id"]
        assert response["status"] == 200 and isinstance(response["result"]["subscriptionId"], int)

        order = await exchange.create_order(
            "BTC/USDT", "limit", "buy", 0.01, 99000, {"clientOrderId": "ws-b1"}
        )
        new = await recv_until(ws, lambda m: m["event"]["e"] == "executionReport")
        assert set(new) == set(sample_event) and new["subscriptionId"] == response["result"]["subscriptionId"]
        # "v" (prevented match id) only appears when STP expired the order; the rest match key for key.
        assert shape(new["event"]) == {k: t for k, t in shape(sample_event["event"]).items() if k != "v"}
        assert (new["event"]["x"], new["event"]["X"], new["event"]["c"]) == ("NEW", "NEW", "ws-b1")
        assert new["event"]["i"] == int(order["id"])
        position = await recv_until(ws, lambda m: m["event"]["e"] == "outboundAccountPosition")
        assert shape(position["event"]) == shape(
            wire.json("binance_userdata_outboundAccountPosition.json")["event"]
        )

        await set_price("binance", "BTCUSDT", "98000")
        fill = await recv_until(ws, lambda m: m["event"]["e"] == "executionReport")
        event = fill["event"]
        assert (event["x"], event["X"], event["l"], event["L"], event["N"], event["m"]) == (
            "TRADE",
            "FILLED",
            "0.01000000",
            "99000.00000000",
            "BTC",
            True,
        )
        await ws.send(json.dumps({"id": "u", "method": "userDataStream.unsubscribe"}))
        terminated = await recv_until(ws, lambda m: "event" in m)
        assert shape(terminated) == shape(wire.json("binance_userdata_eventStreamTerminated.json"))


async def test_user_data_stream_refuses_a_bad_signature(sim, new_account) -> None:
    keys = await new_account(USDT=1)
    params = _signed({"apiKey": keys["apiKey"], "timestamp": int(time.time() * 1000)}, "not-the-secret")
    async with websockets.connect(f"{sim.ws_url}/binance/ws-api/v3") as ws:
        await ws.send(json.dumps({"id": 7, "method": "userDataStream.subscribe.signature", "params": params}))
        response = await recv_json(ws)
        assert response["id"] == 7 and response["status"] == 400
        assert response["error"] == {"code": -1022, "msg": "Signature for this request is not valid."}


async def test_server_sends_websocket_pings() -> None:
    settings = SimSettings(
        port=0, replay_speed=0, history_minutes=5, ws_ping_interval=0.2, log_level="WARNING"
    )
    async with running_sim(settings) as sim, aiohttp.ClientSession() as session:
        url = f"{sim.ws_url}/binance/ws/btcusdt@trade"
        async with session.ws_connect(url, autoping=False) as ws:
            message = await ws.receive(timeout=5)
            assert message.type is aiohttp.WSMsgType.PING
            await ws.pong(message.data)

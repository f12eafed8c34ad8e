"""Upbit WebSocket frames checked against the real messages in shared/wire (same keys, same JSON types)."""

from __future__ import annotations

import json
import re
import uuid

import jwt
import websockets

from exchange_sim.testing import recv_frame, recv_json, recv_until, shape, wait_for_topic


def _ws_url(sim) -> str:
    return f"{sim.ws_url}/upbit/websocket/v1"


def _bearer(keys: dict[str, str]) -> str:
    token = jwt.encode({"access_key": keys["apiKey"], "nonce": str(uuid.uuid4())}, keys["secretKey"], "HS256")
    return f"Bearer {token}"


async def test_ticker_default_frames_match_upbit(sim, wire, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "141000000")
    snapshot_sample, realtime_sample = wire.ndjson("upbit_ws_ticker_default_stream_2025.ndjson")
    request = wire.json("upbit_ws_request_ticker.json")  # KRW-BTC and KRW-ETH, DEFAULT
    async with websockets.connect(_ws_url(sim)) as ws:
        await ws.send(json.dumps(request))
        frames = [await recv_frame(ws), await recv_frame(ws)]
        assert all(isinstance(frame, bytes) for frame in frames), "Upbit sends binary frames"
        snapshots = {f["code"]: f for f in map(json.loads, frames)}
        assert set(snapshots) == {"KRW-BTC", "KRW-ETH"}
        assert shape(snapshots["KRW-BTC"]) == shape(snapshot_sample)
        assert snapshots["KRW-BTC"]["stream_type"] == "SNAPSHOT"
        assert snapshots["KRW-BTC"]["trade_price"] == 141000000

        await set_price("upbit", "KRW-BTC", "142000000")
        realtime = await recv_json(ws)
        assert (
            shape(realtime)
            == shape(realtime_sample)
            == shape(wire.json("upbit_ws_ticker_default_doc_2023.json"))
        )
        assert (realtime["code"], realtime["stream_type"], realtime["trade_price"]) == (
            "KRW-BTC",
            "REALTIME",
            142000000,
        )
        assert realtime["change"] in ("RISE", "EVEN", "FALL")


async def test_trade_default_frames_match_upbit(sim, wire, set_price) -> None:
    await set_price("upbit", "KRW-ETH", "5000000")
    sample = wire.ndjson("upbit_ws_trade_default_doc_2026.ndjson")[0]
    async with websockets.connect(_ws_url(sim)) as ws:
        await ws.send(json.dumps([{"ticket": "t1"}, {"type": "trade", "codes": ["KRW-ETH"]}]))
        snapshot = await recv_json(ws)
        assert shape(snapshot) == shape(sample)
        assert snapshot["stream_type"] == "SNAPSHOT" and snapshot["trade_price"] == 5000000
        await set_price("upbit", "KRW-ETH", "4990000")
        trade = await recv_json(ws)
        assert shape(trade) == shape(sample)
        assert set(wire.json("upbit_ws_trade_default_doc_2023.json")) <= set(trade)
        assert (trade["trade_price"], trade["ask_bid"], trade["stream_type"]) == (4990000, "ASK", "REALTIME")
        assert trade["best_bid_price"] <= trade["trade_price"] <= trade["best_ask_price"]


async def test_simple_format_uses_upbit_abbreviations(sim, wire, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "141000000")
    key_map = wire.json("upbit_ws_simple_field_map_from_docs.json")
    trade_default = wire.ndjson("upbit_ws_trade_default_doc_2026.ndjson")[0]
    expected_trade = {key_map["trade"][k]: t for k, t in shape(trade_default).items()}
    request = wire.json("upbit_ws_request_trade_simple.json")  # trade, KRW-BTC + BTC-BCH, SIMPLE
    request.insert(2, {"type": "ticker", "codes": ["KRW-BTC"]})
    async with websockets.connect(_ws_url(sim)) as ws:
        await ws.send(json.dumps(request))
        frames = [await recv_json(ws), await recv_json(ws)]  # BTC-BCH is not listed: no frame for it
        by_type = {f["ty"]: f for f in frames}
        assert shape(by_type["ticker"]) == shape(wire.json("bithumb_ws_ticker_simple_doc_2024.json"))
        assert shape(by_type["trade"]) == expected_trade
        old = wire.ndjson("upbit_ws_trade_simple_stream_2018.ndjson")[0]
        old["cd"] = old.pop("mk")  # the 2018 capture predates the "cd" key the docs use now
        assert set(old) <= set(by_type["trade"])
        assert by_type["trade"]["st"] == "SNAPSHOT"


async def test_simple_list_wraps_frames_in_a_list(sim, wire) -> None:
    truncated = wire.path("upbit_ws_ticker_simple_list_doc_TRUNCATED.txt").read_text(encoding="utf-8")
    documented_keys = set(re.findall(r'"(\w+)":', truncated))
    async with websockets.connect(_ws_url(sim)) as ws:
        await ws.send(
            json.dumps([{"ticket": "t"}, {"type": "ticker", "codes": ["KRW-XRP"]}, {"format": "SIMPLE_LIST"}])
        )
        frame = await recv_json(ws)
        assert isinstance(frame, list) and len(frame) == 1
        assert documented_keys <= set(frame[0])
        assert frame[0]["cd"] == "KRW-XRP"


async def test_only_realtime_and_only_snapshot(sim, http, set_price) -> None:
    async with (
        websockets.connect(_ws_url(sim)) as realtime_ws,
        websockets.connect(_ws_url(sim)) as snapshot_ws,
    ):
        await realtime_ws.send(
            json.dumps([{"ticket": "r"}, {"type": "ticker", "codes": ["KRW-SOL"], "is_only_realtime": True}])
        )
        await snapshot_ws.send(
            json.dumps([{"ticket": "s"}, {"type": "ticker", "codes": ["KRW-SOL"], "isOnlySnapshot": True}])
        )
        assert (await recv_json(snapshot_ws))["stream_type"] == "SNAPSHOT"
        await wait_for_topic(http, "upbit:ticker:KRW-SOL")
        await set_price("upbit", "KRW-SOL", "330000")
        first = await recv_json(realtime_ws)
        assert (first["stream_type"], first["trade_price"]) == ("REALTIME", 330000)
        # Frames are sent in order: the PING reply coming next proves no realtime frame was queued.
        await snapshot_ws.send("PING")
        assert await recv_json(snapshot_ws) == {"status": "UP"}


async def test_ping_and_request_errors(sim, wire) -> None:
    async with websockets.connect(_ws_url(sim)) as ws:
        await ws.send("PING")
        assert await recv_json(ws) == wire.json("upbit_ws_status_up.json")
        await ws.send(json.dumps([{"type": "ticker", "codes": ["KRW-BTC"]}]))
        error = await recv_json(ws)
        assert shape(error) == shape(wire.json("upbit_ws_error.json"))
        assert error["error"]["name"] == "NO_TICKET"
        await ws.send("not json")
        assert (await recv_json(ws))["error"]["name"] == "WRONG_FORMAT"


async def test_private_my_order_and_my_asset(sim, http, clients, new_account, set_price) -> None:
    await set_price("upbit", "KRW-BTC", "140000000")
    keys = await new_account(KRW=1000000)
    exchange = clients("upbit", keys)
    url = f"{_ws_url(sim)}/private"
    async with websockets.connect(url, additional_headers={"Authorization": _bearer(keys)}) as ws:
        await ws.send(json.dumps([{"ticket": "p"}, {"type": "myOrder"}, {"type": "myAsset"}]))
        await wait_for_topic(http, "upbit:myOrder:*")
        order = await exchange.create_order(
            "BTC/KRW", "limit", "buy", 0.001, 139000000, {"clientOrderId": "ws-1"}
        )
        placed = await recv_until(ws, lambda f: f.get("type") == "myOrder")
        assert (placed["uuid"], placed["state"], placed["identifier"]) == (order["id"], "wait", "ws-1")
        asset = await recv_until(ws, lambda f: f.get("type") == "myAsset")
        assert {a["currency"]: a["locked"] for a in asset["assets"]} == {"KRW": 139069.5}
        await set_price("upbit", "KRW-BTC", "138000000")
        trade = await recv_until(ws, lambda f: f.get("type") == "myOrder")
        assert (trade["state"], trade["price"], trade["volume"], trade["is_maker"]) == (
            "trade",
            139000000,
            0.001,
            True,
        )
        done = await recv_until(ws, lambda f: f.get("type") == "myOrder")
        assert done["state"] == "done" and done["executed_volume"] == 0.001


async def test_private_stream_refuses_bad_tokens(sim, wire) -> None:
    bad = {"apiKey": "nobody", "secretKey": "x" * 32}
    url = f"{_ws_url(sim)}/private"
    async with websockets.connect(url, additional_headers={"Authorization": _bearer(bad)}) as ws:
        error = await recv_json(ws)
        assert shape(error) == shape(wire.json("upbit_ws_error.json"))
        assert error["error"]["name"] == "INVALID_AUTH"
        await ws.wait_closed()
        assert ws.close_code == 1008

"""The /_sim control API: accounts, orders, replay control, fault injection, and the standalone process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
import uuid

import ccxt.async_support as ccxt
import httpx
import jwt
import pytest
import websockets

from exchange_sim.testing import eventually, recv_json, wait_for_topic


async def test_orders_listing_shows_client_ids_status_and_fills(
    http, clients, new_account, set_price
) -> None:
    await set_price("binance", "SOLUSDT", "200")
    keys = await new_account(USDT=1000)
    exchange = clients("binance", keys)
    await exchange.create_order("SOL/USDT", "limit", "buy", 1, 190, {"clientOrderId": "ctl-open"})
    await exchange.create_order("SOL/USDT", "limit", "buy", 1, 199, {"clientOrderId": "ctl-fill"})
    await set_price("binance", "SOLUSDT", "198")
    rows = (await http.get("/_sim/orders", params={"apiKey": keys["apiKey"]})).json()
    by_id = {row["clientOrderId"]: row for row in rows}
    assert set(by_id) == {"ctl-open", "ctl-fill"}
    assert by_id["ctl-open"]["status"] == "NEW" and by_id["ctl-open"]["fills"] == []
    assert by_id["ctl-fill"]["status"] == "FILLED"
    assert [(f["price"], f["quantity"], f["feeAsset"]) for f in by_id["ctl-fill"]["fills"]] == [
        ("199", "1", "SOL")
    ]
    other = (await http.get("/_sim/orders", params={"apiKey": "someone-else"})).json()
    assert other == []


async def test_accounts_validation_and_balances_view(http) -> None:
    bad = await http.post("/_sim/accounts", json={"balances": {"KRW": "lots"}})
    assert bad.status_code == 400
    made = await http.post("/_sim/accounts", json={"balances": {"krw": 5000, "BTC": "0.1"}})
    api_key = made.json()["apiKey"]
    view = (await http.get(f"/_sim/accounts/{api_key}")).json()
    assert view["balances"]["upbit"]["KRW"] == {"free": "5000", "locked": "0"}
    assert view["balances"]["binance"]["BTC"] == {"free": "0.1", "locked": "0"}
    assert (await http.get("/_sim/accounts/nobody")).status_code == 404


async def test_a_revoked_key_is_refused_on_both_venues_and_its_orders_live_on(
    http, clients, new_account, set_price
) -> None:
    await set_price("binance", "SOLUSDT", "200")
    keys = await new_account(USDT=1000, KRW=1000000)
    binance, upbit = clients("binance", keys), clients("upbit", keys)
    await binance.create_order("SOL/USDT", "limit", "buy", 1, 190, {"clientOrderId": "rv-open"})
    assert (await upbit.fetch_balance())["KRW"]["free"] == 1000000

    revoked = await http.post(f"/_sim/accounts/{keys['apiKey']}/revoke")
    assert (revoked.status_code, revoked.json()) == (200, {"apiKey": keys["apiKey"], "revoked": True})
    # Fresh clients: ccxt reads a -2015 after a success on the same client as a temporary ban.
    for venue in ("binance", "upbit"):
        with pytest.raises(ccxt.AuthenticationError):
            await clients(venue, keys).fetch_balance()
    view = (await http.get(f"/_sim/accounts/{keys['apiKey']}")).json()
    assert view["revoked"] is True and view["balances"]["binance"]["USDT"] == {"free": "810", "locked": "190"}
    # The account is still there: its resting order fills when the market comes down to it.
    await set_price("binance", "SOLUSDT", "189")
    rows = (await http.get("/_sim/orders", params={"apiKey": keys["apiKey"]})).json()
    assert [(row["clientOrderId"], row["status"]) for row in rows] == [("rv-open", "FILLED")]
    assert (await http.post("/_sim/accounts/nobody/revoke")).status_code == 404
    other = await new_account(USDT=5)
    assert (await http.get(f"/_sim/accounts/{other['apiKey']}")).json()["revoked"] is False


async def test_step_pause_resume_and_unpin(http) -> None:
    before = (await http.get("/_sim/replay")).json()
    assert before["running"] is False  # the test simulator starts paused
    stepped = (await http.post("/_sim/step", json={"candles": 2})).json()
    assert stepped["candleIndex"] == before["candleIndex"] + 2 and stepped["tickInCandle"] == 0
    resumed = (await http.post("/_sim/resume", json={"speed": 1000})).json()
    assert resumed["running"] is True

    async def advanced() -> bool:
        return (await http.get("/_sim/replay")).json()["candleIndex"] > stepped["candleIndex"]

    await eventually(advanced)
    paused = (await http.post("/_sim/pause")).json()
    assert paused["running"] is False
    await http.put("/_sim/replay", json={"speed": 0})
    await http.post("/_sim/resume")
    assert (await http.get("/_sim/replay")).json()["running"] is False  # speed 0 keeps it still

    pinned = await http.put("/_sim/prices/binance/XRPUSDT", json={"price": "2.12345"})
    assert pinned.json()["price"] == "2.1235"  # rounded to the 0.0001 tick
    await http.post("/_sim/step", json={"candles": 1})
    prices = (await http.get("/_sim/prices")).json()
    assert prices["binance"]["XRPUSDT"] == {"price": "2.1235", "pinned": True}
    await http.delete("/_sim/prices/binance/XRPUSDT")
    await http.post("/_sim/step", json={"candles": 1})
    assert (await http.get("/_sim/prices")).json()["binance"]["XRPUSDT"]["pinned"] is False
    assert (await http.put("/_sim/prices/kraken/XBTUSD", json={"price": "1"})).status_code == 404


async def test_http_500_fault_hits_only_the_chosen_requests(http, clients) -> None:
    binance, upbit = clients("binance"), clients("upbit")
    await binance.load_markets()
    response = await http.post(
        "/_sim/faults",
        json={"kind": "http_500", "count": 2, "exchange": "binance", "path_prefix": "/api/v3/ticker"},
    )
    assert response.status_code == 201
    await upbit.fetch_ticker("BTC/KRW")  # another exchange: untouched
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await binance.fetch_ticker("BTC/USDT")
    assert (await binance.fetch_ticker("BTC/USDT"))["last"] > 0
    assert (await http.get("/_sim/faults")).json() == []


async def test_http_429_fault_is_a_rate_limit_on_both_exchanges(http, clients) -> None:
    binance, upbit = clients("binance"), clients("upbit")
    await binance.load_markets()
    await upbit.load_markets()
    await http.post("/_sim/faults", json={"kind": "http_429", "count": 1, "exchange": "binance"})
    await http.post("/_sim/faults", json={"kind": "http_429", "count": 1, "exchange": "upbit"})
    with pytest.raises(ccxt.DDoSProtection):
        await binance.fetch_ticker("BTC/USDT")
    with pytest.raises(ccxt.RateLimitExceeded):
        await upbit.fetch_ticker("BTC/KRW")


async def test_timeout_fault_makes_the_client_time_out(http, clients) -> None:
    upbit = clients("upbit", timeout=500)
    await upbit.load_markets()
    await http.post("/_sim/faults", json={"kind": "timeout", "count": 1, "exchange": "upbit"})
    with pytest.raises(ccxt.RequestTimeout):
        await upbit.fetch_ticker("BTC/KRW")
    assert (await upbit.fetch_ticker("BTC/KRW"))["last"] > 0


async def test_request_counts_show_what_each_venue_received(http, clients) -> None:
    binance = clients("binance")
    await binance.load_markets()
    assert (await http.delete("/_sim/requests")).json()["total"] == 0
    await http.post("/_sim/faults", json={"kind": "http_500", "count": 1, "path_prefix": "/api/v3/ticker"})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await binance.fetch_ticker("BTC/USDT")
    await binance.fetch_ticker("BTC/USDT")
    await clients("upbit").fetch_ticker("BTC/KRW")
    counts = (await http.get("/_sim/requests", params={"exchange": "binance"})).json()
    assert counts == {"total": 2, "requests": {"binance GET /api/v3/ticker/24hr": 2}}
    everything = (await http.get("/_sim/requests")).json()
    assert everything["requests"]["upbit GET /v1/ticker"] == 1
    assert everything["total"] == 2 + sum(
        n for k, n in everything["requests"].items() if k.startswith("upbit")
    )
    only = (await http.get("/_sim/requests", params={"path_prefix": "/v1/ticker"})).json()
    assert only == {"total": 1, "requests": {"upbit GET /v1/ticker": 1}}


async def test_request_counts_per_api_key_include_refused_keys(http, clients, new_account) -> None:
    keys, other = await new_account(USDT=10, KRW=10000), await new_account(USDT=10, KRW=10000)
    await http.delete("/_sim/requests")
    await clients("binance", keys).fetch_balance()
    await clients("upbit", keys).fetch_balance()
    await clients("upbit", other).fetch_balance()
    stranger = {"apiKey": "s" * 64, "secretKey": "t" * 64}
    with pytest.raises(ccxt.AuthenticationError):
        await clients("binance", stranger).fetch_balance()

    async def counted(api_key: str, exchange: str | None = None) -> dict[str, object]:
        params = {"apiKey": api_key, **({"exchange": exchange} if exchange else {})}
        return (await http.get("/_sim/requests", params=params)).json()

    mine = await counted(keys["apiKey"])
    assert mine["requests"] == {"binance GET /api/v3/account": 1, "upbit GET /v1/accounts": 1}
    assert (await counted(other["apiKey"], "upbit"))["total"] == 1
    assert (await counted(other["apiKey"], "binance"))["total"] == 0
    assert (await counted("s" * 64))["requests"] == {"binance GET /api/v3/account": 1}


async def test_drop_websockets_for_a_while_closes_new_connections_until_it_ends(sim, http) -> None:
    url = f"{sim.ws_url}/binance/ws/xrpusdt@trade"
    held = (await http.post("/_sim/faults", json={"kind": "drop_websockets", "seconds": 3})).json()
    assert held["seconds"] == 3
    began = time.monotonic()
    async with websockets.connect(url) as during:
        await asyncio.wait_for(during.wait_closed(), 5)
        assert during.close_code == 1012
    upbit = f"{sim.ws_url}/upbit/websocket/v1"
    async with websockets.connect(upbit) as upbit_during:
        await asyncio.wait_for(upbit_during.wait_closed(), 5)

    async def stays_open() -> bool:
        async with websockets.connect(url) as after:
            try:
                await asyncio.wait_for(after.wait_closed(), 0.3)
            except TimeoutError:
                return True
            return False

    await eventually(stays_open, within=8)
    assert time.monotonic() - began >= 3
    refused = await http.post("/_sim/faults", json={"kind": "drop_websockets", "seconds": "long"})
    assert refused.status_code == 400


async def test_fault_requests_are_validated(http) -> None:
    assert (await http.post("/_sim/faults", json={"kind": "meteor"})).status_code == 400
    assert (await http.post("/_sim/faults", json={"kind": "http_500", "count": 0})).status_code == 400
    await http.post("/_sim/faults", json={"kind": "http_500", "count": 3, "path_prefix": "/nowhere"})
    assert len((await http.get("/_sim/faults")).json()) == 1
    await http.delete("/_sim/faults")
    assert (await http.get("/_sim/faults")).json() == []


async def test_drop_websockets_closes_every_connection(sim, http) -> None:
    async with (
        websockets.connect(f"{sim.ws_url}/binance/ws/xrpusdt@trade") as binance_ws,
        websockets.connect(f"{sim.ws_url}/upbit/websocket/v1") as upbit_ws,
    ):
        await upbit_ws.send('[{"ticket":"d"},{"type":"trade","codes":["KRW-XRP"]}]')
        await recv_json(upbit_ws)
        await wait_for_topic(http, "binance:xrpusdt@trade")
        dropped = (await http.post("/_sim/faults", json={"kind": "drop_websockets"})).json()
        assert dropped["dropped"] >= 2
        await asyncio.wait_for(binance_ws.wait_closed(), 5)
        await asyncio.wait_for(upbit_ws.wait_closed(), 5)
        assert binance_ws.close_code == upbit_ws.close_code == 1012

    async def none_left() -> bool:
        return (await http.get("/_sim/health")).json()["websockets"] == 0

    await eventually(none_left)


async def test_user_streams_are_shown_per_api_key_while_open(sim, http, new_account) -> None:
    keys, other = await new_account(USDT=1), await new_account(USDT=1)

    async def streams(api_key: str) -> list[dict[str, object]]:
        response = await http.get("/_sim/user-streams", params={"apiKey": api_key})
        assert response.status_code == 200
        rows: list[dict[str, object]] = response.json()
        return rows

    async def open_for_key(count: int) -> bool:
        return len(await streams(keys["apiKey"])) == count

    token = jwt.encode({"access_key": keys["apiKey"], "nonce": str(uuid.uuid4())}, keys["secretKey"])
    params: dict[str, object] = {"apiKey": keys["apiKey"], "timestamp": int(time.time() * 1000)}
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(keys["secretKey"].encode(), payload.encode(), hashlib.sha256).hexdigest()
    upbit_url = f"{sim.ws_url}/upbit/websocket/v1/private"
    async with (
        websockets.connect(upbit_url, additional_headers={"Authorization": f"Bearer {token}"}),
        websockets.connect(f"{sim.ws_url}/binance/ws-api/v3") as binance,
    ):
        await binance.send(
            json.dumps({"id": 1, "method": "userDataStream.subscribe.signature", "params": params})
        )
        assert (await recv_json(binance))["status"] == 200
        await eventually(lambda: open_for_key(2))
        assert sorted((r["exchange"], r["connections"]) for r in await streams(keys["apiKey"])) == [
            ("binance", 1),
            ("upbit", 1),
        ]
        assert await streams(other["apiKey"]) == []
        only = await http.get("/_sim/user-streams", params={"apiKey": keys["apiKey"], "exchange": "upbit"})
        assert [r["exchange"] for r in only.json()] == ["upbit"]
        await binance.send(json.dumps({"id": 2, "method": "userDataStream.unsubscribe"}))
        await eventually(lambda: open_for_key(1))
    await eventually(lambda: open_for_key(0))
    assert (await http.get("/_sim/user-streams", params={"exchange": "bithumb"})).status_code == 404


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_runs_as_its_own_process() -> None:
    port = _free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - a child process the test waits on via HTTP
        [sys.executable, "-m", "exchange_sim", "--port", str(port), "--speed", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/_sim/health")).json()["status"] == "ok"
                except httpx.TransportError:
                    return False

            await eventually(healthy, within=20)
            times = (await client.get("/binance/api/v3/time")).json()
            assert isinstance(times["serverTime"], int)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode is not None

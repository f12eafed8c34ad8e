"""SIM_STATE_FILE: a simulator stopped and started again resumes with its accounts, balances and orders."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import httpx
import pytest

from exchange_sim import SimServer, SimSettings, ccxt_overrides
from exchange_sim.persist import restore, snapshot, write_atomically
from exchange_sim.server import running_sim
from exchange_sim.state import SimState


def _settings(path: Path) -> SimSettings:
    return SimSettings(port=0, replay_speed=0, log_level="WARNING", ticker_interval_ms=0, state_file=path)


@pytest.fixture
def make_client() -> Callable[..., Any]:
    """ccxt clients for a simulator, closed by the test (each simulator lives only inside the test)."""

    def make(sim: SimServer, exchange_id: str, keys: dict[str, str]) -> Any:
        config = {**ccxt_overrides(exchange_id, sim.url), "timeout_on_exit": 0}
        return getattr(ccxt, exchange_id)({**config, "apiKey": keys["apiKey"], "secret": keys["secretKey"]})

    return make


def _free(balance: dict[str, Any], asset: str) -> tuple[Decimal, Decimal]:
    return Decimal(str(balance[asset]["free"])), Decimal(str(balance[asset]["used"]))


async def test_a_restarted_simulator_keeps_accounts_balances_and_orders(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    path = tmp_path / "var" / "exchange-sim.json"
    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        keys = (
            await http.post("/_sim/accounts", json={"balances": {"KRW": "1000000", "USDT": "1000"}})
        ).json()
        await http.put("/_sim/prices/upbit/KRW-BTC", json={"price": "140000000"})
        await http.put("/_sim/prices/binance/BTCUSDT", json={"price": "100000"})
        upbit, binance = make_client(sim, "upbit", keys), make_client(sim, "binance", keys)
        try:
            resting = await upbit.create_order(
                "BTC/KRW", "limit", "buy", 0.001, 139000000, {"clientOrderId": "bot1-s1-c0"}
            )
            filled = await binance.create_order(
                "BTC/USDT", "limit", "buy", 0.001, 99000, {"clientOrderId": "bot2-s1-c0"}
            )
            await http.put("/_sim/prices/binance/BTCUSDT", json={"price": "98000"})  # fills it
            sell = await binance.create_order(
                "BTC/USDT", "limit", "sell", 0.0009, 101000, {"clientOrderId": "bot2-s2-c0"}
            )
            before = {
                "upbit": await upbit.fetch_balance(),
                "binance": await binance.fetch_balance(),
                "orders": (await http.get("/_sim/orders", params={"apiKey": keys["apiKey"]})).json(),
            }
        finally:
            await upbit.close()
            await binance.close()
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))

    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        assert (await http.get(f"/_sim/accounts/{keys['apiKey']}")).status_code == 200
        orders = (await http.get("/_sim/orders", params={"apiKey": keys["apiKey"]})).json()
        assert orders == before["orders"]  # every order, its status, fills and fees
        prices = (await http.get("/_sim/prices")).json()
        assert prices["binance"]["BTCUSDT"] == {"price": "98000", "pinned": True}
        upbit, binance = make_client(sim, "upbit", keys), make_client(sim, "binance", keys)
        try:
            # The same keys sign; the balances (locked ones too) are as they were.
            assert _free(await upbit.fetch_balance(), "KRW") == _free(before["upbit"], "KRW")
            assert _free(await binance.fetch_balance(), "USDT") == _free(before["binance"], "USDT")
            assert _free(await binance.fetch_balance(), "BTC") == _free(before["binance"], "BTC")
            assert [o["id"] for o in await upbit.fetch_open_orders("BTC/KRW")] == [resting["id"]]
            # A used identifier stays used; new order ids follow the old ones.
            with pytest.raises(ccxt.ExchangeError, match="duplicated_identifier"):
                await upbit.create_order(
                    "BTC/KRW", "limit", "buy", 0.001, 139000000, {"clientOrderId": "bot1-s1-c0"}
                )
            newer = await binance.create_order("BTC/USDT", "limit", "buy", 0.0001, 90000)
            assert int(newer["id"]) > int(sell["id"]) > int(filled["id"])
            # The resting orders are back on the book: the tape fills them.
            await http.put("/_sim/prices/upbit/KRW-BTC", json={"price": "138000000"})
            assert (await upbit.fetch_order(resting["id"]))["status"] == "closed"
            await http.put("/_sim/prices/binance/BTCUSDT", json={"price": "102000"})
            assert (await binance.fetch_order(sell["id"], "BTC/USDT"))["status"] == "closed"
        finally:
            await upbit.close()
            await binance.close()


async def test_a_revoked_key_stays_revoked_after_a_restart(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    path = tmp_path / "exchange-sim.json"
    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        keys = (await http.post("/_sim/accounts", json={"balances": {"KRW": "1000000"}})).json()
        assert (await http.post(f"/_sim/accounts/{keys['apiKey']}/revoke")).status_code == 200

    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        view = (await http.get(f"/_sim/accounts/{keys['apiKey']}")).json()
        assert view["revoked"] is True and view["balances"]["upbit"]["KRW"] == {
            "free": "1000000",
            "locked": "0",
        }
        upbit = make_client(sim, "upbit", keys)
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await upbit.fetch_balance()
        finally:
            await upbit.close()


async def test_a_crash_mid_write_leaves_the_previous_state_readable(tmp_path: Path) -> None:
    path = tmp_path / "exchange-sim.json"
    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        keys = (await http.post("/_sim/accounts", json={"balances": {"USDT": "5"}})).json()
    saved = path.read_bytes()
    # What a process killed inside write_atomically leaves: a half-written temporary file, the old state.
    (tmp_path / ".exchange-sim.json.k1ll3d.tmp").write_bytes(saved[: len(saved) // 2])
    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        assert (await http.get(f"/_sim/accounts/{keys['apiKey']}")).status_code == 200
    write_atomically(path, b"{}")
    assert path.read_bytes() == b"{}"


async def test_an_unreadable_state_file_is_kept_aside_and_the_simulator_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "exchange-sim.json"
    path.write_text(json.dumps({"version": 999}))
    async with running_sim(_settings(path)) as sim, httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        assert (await http.get("/_sim/health")).json()["accounts"] == 0
    assert json.loads((tmp_path / "exchange-sim.json.unreadable").read_text()) == {"version": 999}


def test_the_replay_resumes_where_it_was_unless_the_history_has_grown_past_it() -> None:
    first = SimState.build(SimSettings(history_minutes=10, replay_speed=0))
    first.replayer.advance(5)
    first.replayer.step()  # half-way through a candle: it starts over at the next
    saved = json.loads(json.dumps(snapshot(first)))
    same = SimState.build(SimSettings(history_minutes=10, replay_speed=0))
    restore(same, saved)
    assert same.replayer.candle_index == 16
    # SIM_HISTORY_MINUTES raised between the two runs: those minutes are history now, the replay follows it.
    longer = SimState.build(SimSettings(history_minutes=100, replay_speed=0))
    restore(longer, saved)
    assert longer.replayer.candle_index == 100


def test_a_candle_whose_first_tick_reached_some_markets_starts_over_at_the_next() -> None:
    first = SimState.build(SimSettings(history_minutes=10, replay_speed=0))
    first.replayer.feed_next()  # the timer fed one market the candle's first trade, the others not yet
    saved = json.loads(json.dumps(snapshot(first)))
    assert saved["replay"] == {"candleIndex": 10, "tickInCandle": 0, "marketsFed": 1}
    again = SimState.build(SimSettings(history_minutes=10, replay_speed=0))
    restore(again, saved)
    assert (again.replayer.candle_index, again.replayer.markets_fed) == (11, 0)

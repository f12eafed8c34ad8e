"""`make run` stopped (a real signal) and started again with a live bot on simulator keys: it trades on.

The embedded simulator keeps its accounts, balances and orders beside the SQLite file (var/), so after
the restart the bot's keys still work, its resting orders are still on the book, and a price move
through one of them makes the trade the bot books.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from common.testing.infra import free_port
from common.testing.wait import eventually
from launcher.dev import wait_healthy
from launcher.testing import (
    POLL,
    System,
    body,
    clients,
    grid_around,
    move,
    pending,
    register,
    sim_account,
    sim_orders,
    sim_price,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE, SYMBOL = "upbit", "KRW-ETH"


@contextmanager
def embedded(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m launcher.embedded` (what `make run` runs) until the block ends, then SIGINT (Ctrl-C)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher.embedded"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(
            f"http://127.0.0.1:{env['PORT']}/health",
            proc,
            timeout=60,
            describe=lambda: log.read_text(errors="replace")[-4000:],
        )
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _open_orders(orders: list[dict[str, Any]]) -> list[tuple[str, str | None, str | None]]:
    return sorted((o["orderId"], o["clientOrderId"], o["price"]) for o in orders if o["status"] == "wait")


async def test_a_restarted_make_run_resumes_a_live_bot_on_simulator_keys(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "SERVICES", "CREDENTIALS_URL", "BOTS_URL")
        and not k.startswith("SIM_")
    }
    var = tmp_path / "var"
    env.update(
        PORT=str(port),
        SIM_PORT=str(sim_port),
        GRIDBOT_DB_PATH=str(var / "gridbot.db"),
        TRUSTED_PROXIES='["127.0.0.1"]',
        # Only the test moves prices (the replay would wander through the grid on its own).
        SIM_REPLAY_SPEED="0",
    )
    system = System(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}")
    log = tmp_path / "embedded.log"

    with embedded(env, log) as first:
        async with clients(system, "10.9.8.7") as (api, sim):
            auth = await register(api)
            keys = await sim_account(system.sim, KRW="2000000")
            r = await api.post("/api/credentials", headers=auth, json={"exchange": EXCHANGE, **keys})
            assert r.status_code == 201, r.text
            start = await sim_price(sim, EXCHANGE, SYMBOL)
            await move(sim, EXCHANGE, SYMBOL, start)
            r = await api.post(
                "/api/bots",
                headers=auth,
                json=grid_around(EXCHANGE, SYMBOL, start, "0.05", 1, 10000, mode="live"),
            )
            bot_id = body(r)["botId"]
            levels = [
                level["price"]
                for level in body(await api.get(f"/api/bots/{bot_id}/grid-levels", headers=auth))[
                    "gridLevels"
                ]
            ]
            k = max(i for i, price in enumerate(levels) if price < start)

            async def resting() -> bool:
                at_exchange = _open_orders(await sim_orders(sim, keys["apiKey"], EXCHANGE))
                return await pending(api, auth, bot_id, "buy") == k + 1 and len(at_exchange) == k + 1

            await eventually(resting, timeout=30, interval=POLL, message="the bot's buys never rested")
            open_before = _open_orders(await sim_orders(sim, keys["apiKey"], EXCHANGE))
    assert first.returncode == 0, log.read_text(errors="replace")[-3000:]

    with embedded(env, log):
        async with clients(system, "10.9.8.7") as (api, sim):
            # The simulator remembers the account and the bot's resting orders (kept beside the database).
            assert (await sim.get(f"/_sim/accounts/{keys['apiKey']}")).status_code == 200
            assert (var / "exchange-sim.json").is_file()
            assert _open_orders(await sim_orders(sim, keys["apiKey"], EXCHANGE)) == open_before
            assert Decimal((await sim.get("/_sim/prices")).json()[EXCHANGE][SYMBOL]["price"]) == start

            async def stream_up() -> bool:
                topics = (await sim.get("/_sim/health")).json()["websocketTopics"]
                return any(topic.startswith("upbit:myOrder") for topic in topics)

            await eventually(
                stream_up, timeout=30, interval=POLL, message="the private stream never came back"
            )

            # The bot trades on: a move through its highest buy fills it, and the bot books the trade.
            await move(sim, EXCHANGE, SYMBOL, levels[k])

            async def traded() -> bool:
                data = body(await api.get(f"/api/bots/{bot_id}/trades", headers=auth))
                return [t["type"] for t in data["trades"]] == ["buy"]

            await eventually(traded, timeout=30, interval=POLL, message="no trade after the restart")
            after = await sim_orders(sim, keys["apiKey"], EXCHANGE)
            filled = [o for o in after if o["status"] == "done"]
            assert [o["clientOrderId"] for o in filled] == [
                c for _, c, p in open_before if Decimal(p or 0) == levels[k]
            ]
            r = await api.delete(f"/api/bots/{bot_id}", headers=auth)
            assert r.status_code == 200, r.text

"""The simulator's SIM_* settings reach it in every mode: `make dev` hands them to the simulator's process
(and to no other), `make run` builds its in-process simulator from them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from exchange_sim.server import running_sim
from exchange_sim.settings import SimSettings
from launcher.dev import Stack
from launcher.embedded import SIM_STATE_FILE, embedded_sim_settings
from launcher.topology import SERVICES, dev_ports, service

CHOSEN = {
    "SIM_HISTORY_MINUTES": "41761",
    "SIM_CANDLE_FILE": "/somewhere/my_month.csv",
    "SIM_REPLAY_SPEED": "max",
    "SIM_SEED": "7",
    "SIM_STATE_FILE": "/somewhere/sim.json",
}


def use_sim_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly these SIM_* variables in the environment."""
    for name in list(SimSettings.model_fields):
        monkeypatch.delenv(f"SIM_{name.upper()}", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_make_dev_hands_the_simulator_its_sim_variables_and_no_other_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**CHOSEN, "SIM_PORT": "1", "SIM_HOST": "0.0.0.0"}.items():
        monkeypatch.setenv(name, value)
    stack = Stack("postgresql+asyncpg://x/y", "redis://x", "amqp://x", dev_ports())
    sim = service("exchange-sim")
    env = stack.env_for(sim, stack.port_for(sim, "exchange-sim"), "exchange-sim")
    assert {name: env[name] for name in CHOSEN} == CHOSEN
    # Where it listens is still the topology's.
    assert (env["SIM_HOST"], env["SIM_PORT"]) == ("127.0.0.1", str(sim.port))
    # What the simulator's process reads from that environment.
    use_sim_env({k: v for k, v in env.items() if k.startswith("SIM_")}, monkeypatch)
    settings = SimSettings()
    assert settings.history_minutes == 41761 and settings.candle_file == Path("/somewhere/my_month.csv")
    assert settings.replay_speed == "max" and settings.seed == 7
    for spec in SERVICES:
        if spec is not sim:
            assert not [name for name in stack.env_for(spec) if name.startswith("SIM_")], spec.name


async def test_make_run_builds_its_simulator_from_the_sim_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    month = tmp_path / "my_month.csv"
    closes = [f"{200 + i}.5" for i in range(30)]
    month.write_text(
        "open,high,low,close,volume,quote_volume,trades,close_datetime\n"
        + "".join(f"{200 + i},{201 + i},{199 + i},{c},2,400,{i + 1},x\n" for i, c in enumerate(closes))
    )
    use_sim_env(
        {"SIM_CANDLE_FILE": str(month), "SIM_HISTORY_MINUTES": "20", "SIM_REPLAY_SPEED": "0"}, monkeypatch
    )
    settings = embedded_sim_settings(tmp_path / "gridbot.db")
    assert (settings.candle_file, settings.history_minutes, settings.replay_speed) == (month, 20, 0)
    assert settings.state_file == tmp_path / SIM_STATE_FILE  # beside the database, as before
    async with running_sim(settings.model_copy(update={"port": 0})) as sim, httpx.AsyncClient() as http:
        response = await http.get(
            f"{sim.url}/binance/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}
        )
        assert [row[4] for row in response.json()] == [f"{c}0000000" for c in closes[:20]]
    monkeypatch.setenv("SIM_STATE_FILE", str(tmp_path / "elsewhere.json"))
    assert embedded_sim_settings(tmp_path / "gridbot.db").state_file == tmp_path / "elsewhere.json"

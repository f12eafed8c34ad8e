"""The dev topology's replicas and the restart policy's arithmetic, without starting anything."""

from __future__ import annotations

import json

import pytest

from launcher.dev import RestartPolicy, Stack, describe_exit
from launcher.topology import SERVICES, dev_ports, service


def stack(**options: object) -> Stack:
    return Stack("postgresql+asyncpg://x/y", "redis://x", "amqp://x", dev_ports(), **options)  # type: ignore[arg-type]


def test_make_dev_runs_two_engine_replicas_each_on_a_port_of_its_own() -> None:
    ports = dev_ports()
    assert stack().names(service("engine")) == ["engine-1", "engine-2"]
    assert ports["engine"] == 3004 and ports["engine-2"] not in {
        p for k, p in ports.items() if k != "engine-2"
    }
    assert stack().names(service("auth")) == ["auth"]


def test_each_replica_gets_its_own_engine_id_and_port() -> None:
    dev = stack()
    engine = service("engine")
    one = dev.env_for(engine, dev.port_for(engine, "engine-1"), "engine-1")
    two = dev.env_for(engine, dev.port_for(engine, "engine-2"), "engine-2")
    assert two == dev.env_for(engine, key="engine-2")
    assert (one["ENGINE_ID"], one["PORT"]) == ("engine-1", "3004")
    assert (two["ENGINE_ID"], two["PORT"]) == ("engine-2", str(dev_ports()["engine-2"]))
    # Everything else is the same deployment.
    assert {k: v for k, v in one.items() if k not in ("ENGINE_ID", "PORT")} == {
        k: v for k, v in two.items() if k not in ("ENGINE_ID", "PORT")
    }


def test_a_replica_missing_from_the_ports_gets_a_free_one() -> None:
    ports = {s.name: s.port for s in SERVICES}  # as a test builds them: one per service
    taken = Stack("postgresql+asyncpg://x/y", "redis://x", "amqp://x", ports)
    port = taken.port_for(service("engine"), "engine-2")
    assert port not in ports.values() and port > 0


def test_one_replica_when_asked() -> None:
    assert stack(engine_replicas=1).names(service("engine")) == ["engine-1"]


def test_the_gateway_checks_the_engine_at_replica_one() -> None:
    env = stack().env_for(service("gateway"))
    assert json.loads(env["READINESS_CHECKS"]) == {
        "engine": "http://127.0.0.1:3004",
        "backtest-worker": "http://127.0.0.1:3008",
    }
    assert "ENGINE_ID" not in env


def test_the_restart_delay_doubles_up_to_its_ceiling_and_starts_over_after_a_long_run() -> None:
    policy = RestartPolicy()
    assert (policy.delay, policy.max_delay, policy.reset_after) == (0.5, 10.0, 10.0)
    delays, last = [], None
    for _ in range(8):
        last = policy.next_delay(last, uptime=1.0)
        delays.append(last)
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert policy.next_delay(10.0, uptime=10.0) == 0.5
    assert policy.next_delay(10.0, uptime=9.9) == 10.0


@pytest.mark.parametrize(("code", "said"), [(1, "1"), (0, "0"), (-9, "-9 (SIGKILL)"), (-15, "-15 (SIGTERM)")])
def test_exit_codes_read_as_signals(code: int, said: str) -> None:
    assert describe_exit(code) == said

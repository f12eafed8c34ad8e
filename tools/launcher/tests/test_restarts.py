"""`make dev`'s launcher keeps its processes running, with real processes over the real servers: a process
killed by a signal is started again under its own name, one that keeps dying is started again ever later,
and the launcher's own SIGINT or SIGTERM stops every process for good."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.testing.infra import free_port, scratch_database
from common.testing.wait import eventually
from launcher.dev import RestartPolicy, Stack
from launcher.topology import ENGINE_NICE, SERVICES, service

# Generous: a loaded machine can take long to import and start a service (a death while starting still
# fails at once).
STARTUP_SECONDS = 120.0

MakeStack = Callable[..., Stack]


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    with scratch_database(postgres_admin_url) as url:
        yield url


@pytest.fixture
def stacks(
    database_url: str, redis_url: str, rabbitmq_url: str, namespace: str, tmp_path: Path
) -> Iterator[MakeStack]:
    """Stacks of the named services on a scratch database and namespaces of their own, stopped at the end."""
    made: list[Stack] = []

    def make(*names: str, **options: Any) -> Stack:
        stack = Stack(
            database_url=database_url,
            redis_url=redis_url,
            rabbitmq_url=rabbitmq_url,
            ports={s.name: free_port() for s in SERVICES},
            log_dir=tmp_path / "logs",
            cache_namespace=namespace,
            bus_namespace=namespace,
            services=tuple(service(name) for name in names),
            **options,
        )
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.stop()


async def started(stack: Stack) -> Stack:
    await asyncio.to_thread(stack.migrate)
    await asyncio.to_thread(stack.start, STARTUP_SECONDS)
    return stack


async def healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as c:
            return (await c.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    except httpx.HTTPError:
        return False


def environ(pid: int) -> dict[str, str]:
    """A live process's environment, as the kernel holds it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def test_an_engine_replica_killed_by_a_signal_is_started_again_under_its_own_name(
    stacks: MakeStack, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stack = await started(stacks("bots", "engine"))  # two engine replicas, as `make dev` runs them
    first = stack.processes["engine-1"]
    assert environ(first.pid)["ENGINE_ID"] == "engine-1"
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    # The engines yield the CPU to the processes answering requests; the others run as the launcher does.
    assert os.getpriority(os.PRIO_PROCESS, first.pid) == mine + ENGINE_NICE > mine
    bots = stack.processes[stack.names(service("bots"))[0]]
    assert os.getpriority(os.PRIO_PROCESS, bots.pid) == mine

    os.kill(first.pid, signal.SIGKILL)  # from outside the launcher, as the OOM killer would

    async def back() -> bool:
        again = stack.processes["engine-1"]
        return again.pid != first.pid and await healthy(stack.port("engine-1"))

    await eventually(back, timeout=STARTUP_SECONDS, interval=0.2, message="engine-1 never came back")
    assert first.returncode == -signal.SIGKILL
    assert stack.restarts("engine-1") == 1
    assert environ(stack.processes["engine-1"].pid)["ENGINE_ID"] == "engine-1"
    assert os.getpriority(os.PRIO_PROCESS, stack.processes["engine-1"].pid) == mine + ENGINE_NICE
    said = capfd.readouterr().out
    assert "launcher: engine-1 exited with -9 (SIGKILL); restarting in 0.5 s (restart 1)" in said, said

    # Replica 2 runs beside it on a port and a log of its own; whether it stays up is the engine's business
    # (one that refuses a second engine exits, and is started again like any other process).
    assert stack.port("engine-2") not in {stack.port("engine-1"), *stack.ports.values()}

    async def engine_2_runs_or_is_restarted() -> bool:
        return stack.restarts("engine-2") > 0 or await healthy(stack.port("engine-2"))

    await eventually(engine_2_runs_or_is_restarted, timeout=STARTUP_SECONDS, interval=0.2)
    assert (tmp_path / "logs" / "engine-2.log").stat().st_size > 0


async def test_a_process_that_keeps_dying_is_started_again_ever_later(
    stacks: MakeStack, tmp_path: Path
) -> None:
    said: list[tuple[float, str]] = []

    def say(line: str) -> None:
        said.append((time.monotonic(), line))

    policy = RestartPolicy(delay=0.2, max_delay=0.8, reset_after=60)
    stack = await started(stacks("auth", restart_policy=policy, say=say))
    port = stack.port("auth")
    await asyncio.to_thread(stack.kill, "auth", signal.SIGKILL, True)  # held: down until released

    def deaths() -> list[tuple[float, str]]:
        return [(t, line) for t, line in said if " exited with " in line]

    # Something else holds its port: every start fails (uvicorn cannot bind) until it lets go.
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        stack.release("auth")
        await eventually(
            lambda: len(deaths()) >= 5, timeout=STARTUP_SECONDS, interval=0.2, message=f"said: {said}"
        )
    await asyncio.to_thread(stack.wait_ready, "auth", STARTUP_SECONDS)

    loop = deaths()[:5]
    codes = [re.search(r"exited with (-?\d+)", line)[1] for _, line in loop]  # type: ignore[index]
    delays = [float(re.search(r"restarting in ([\d.]+) s", line)[1]) for _, line in loop]  # type: ignore[index]
    # The kill, then starts that failed (uvicorn's exit code for a failed startup), each for the port.
    assert codes[0] == "-9" and len(set(codes[1:])) == 1 and codes[1] != "0", said
    log = (tmp_path / "logs" / "auth.log").read_text()
    assert log.count("address already in use") >= 4
    assert delays == [0.2, 0.4, 0.8, 0.8, 0.8], said  # doubling, then held at the cap
    # Each start waited its delay after the death it followed: no spin.
    starts = [t for t, line in said if "started again" in line]
    for (died, _), delay, start in zip(loop, delays, starts, strict=False):
        assert start - died >= delay - 0.01, said
    assert [int(re.search(r"\(restart (\d+)\)", line)[1]) for _, line in loop] == [1, 2, 3, 4, 5]  # type: ignore[index]
    assert stack.restarts("auth") >= 5 and await healthy(port)


# `make dev`'s entry point on a one-service stack of its own (the real one takes the dev ports).
LAUNCHER = """
import json, sys
from launcher.dev import Stack, serve
from launcher.topology import service
options = json.loads(sys.argv[1])
sys.exit(serve(Stack(**options, services=(service("auth"),)), ready_timeout=120))
"""


def children(pid: int) -> list[int]:
    """A process's children (the kernel lists them per thread that started them)."""
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
async def test_sigint_or_sigterm_to_the_launcher_stops_every_process_for_good(
    sig: signal.Signals, database_url: str, redis_url: str, rabbitmq_url: str, namespace: str, tmp_path: Path
) -> None:
    options = {
        "database_url": database_url,
        "redis_url": redis_url,
        "rabbitmq_url": rabbitmq_url,
        "ports": {s.name: free_port() for s in SERVICES},
        "cache_namespace": namespace,
        "bus_namespace": namespace,
    }
    out = tmp_path / "launcher.out"
    with out.open("wb") as sink:
        launcher = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waited for in a thread below
            [sys.executable, "-c", LAUNCHER, json.dumps(options)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        await eventually(
            lambda: "processes up" in out.read_text() or launcher.poll() is not None,
            timeout=STARTUP_SECONDS,
            interval=0.2,
        )
        assert launcher.poll() is None, out.read_text()
        auth = children(launcher.pid)
        assert len(auth) == 1 and await healthy(options["ports"]["auth"])  # type: ignore[index]

        launcher.send_signal(sig)
        assert await asyncio.to_thread(launcher.wait, 60) == 0, out.read_text()
    finally:
        if launcher.poll() is None:
            launcher.kill()
    said = out.read_text()
    assert gone(auth[0]), said
    assert f"launcher: {sig.name}: stopping every process" in said and "launcher: stopped" in said
    assert "restarting" not in said

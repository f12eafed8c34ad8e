"""Whole-system fixtures: the real processes (as `make dev` and `make run` start them), HTTP only."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from common.testing.infra import free_port, scratch_database
from common.testing.sweep import sweep_namespaces
from launcher.dev import Stack
from launcher.testing import ADMIN_EMAIL, System, embedded, random_client_ip
from launcher.topology import SERVICES

ROOT = Path(__file__).resolve().parents[2]
# How long a dev stack's process may take to answer /health: generous (as `embedded` gives `make run`), the
# machine may be busy. A process that dies while starting fails at once all the same.
STARTUP_SECONDS = 120.0
# The e2e client sits behind a "load balancer" on loopback so each test can be its own client IP.
TRUSTED = json.dumps(["127.0.0.1"])


# Modules whose unparametrized tests take the dev stack itself (`dev_stack`/`dev_system`): the scheduler sees
# only test ids, and a parametrized test names its stack in its id (`[embedded…]`, `[dev…]`).
DEV_STACK_MODULES = frozenset(
    {
        "tests/e2e/test_auth_flow.py",
        "tests/e2e/test_metrics.py",
        "tests/e2e/test_outages.py",
        "tests/e2e/test_replicas.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Time limits of the e2e tests, the tests that kill processes of the shared stack last, and a check
    that the scheduler will send each test to the worker holding its stack.

    An e2e test's time limit counts the test itself, not the start of the stacks it shares (bounded by
    STARTUP_SECONDS per process instead), which a busy machine can stretch to minutes.
    """
    for item in items:
        if item.get_closest_marker("e2e") is None:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(120, func_only=True))
        uses = _stacks_used(item)
        if uses and stack_of(item.nodeid) not in uses:
            raise pytest.UsageError(
                f"{item.nodeid} runs on the {'/'.join(sorted(uses))} stack but would be scheduled apart from "
                "it: list its module in DEV_STACK_MODULES (tests/e2e/conftest.py) or parametrize it"
            )
    # Stable: every other test keeps its order; a failed restart then cannot take other tests down with it.
    items.sort(key=lambda item: item.get_closest_marker("outage") is not None)


def _stacks_used(item: pytest.Item) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("system") if callspec is not None else None
    used = {param} if param in ("embedded", "dev") else set()
    if names & {"dev_stack", "dev_system"}:
        used.add("dev")
    if "embedded_system" in names and param is None:
        used.add("embedded")
    return used


def stack_of(nodeid: str) -> str:
    """The work unit of an e2e test: the stack it runs on (from its id or module), else the test alone."""
    found = re.search(r"\[(embedded|dev)\b", nodeid)
    if found:
        return found.group(1)
    return "dev" if nodeid.split("::", 1)[0] in DEV_STACK_MODULES else nodeid


class StackScheduling(LoadScopeScheduling):
    """pytest-xdist scheduling that sends every test of one stack to the same worker, which starts that
    stack once; a worker's stacks are its own (database, ports, Redis and RabbitMQ namespaces).

    xdist's own `loadgroup` cannot do this on pytest 9.2 (its group marks are lost: pytest-xdist#1386).
    """

    def _split_scope(self, nodeid: str) -> str:
        return stack_of(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> StackScheduling | None:
    """`--dist loadgroup` (as `make test` runs tests/e2e): one work unit per stack."""
    return StackScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.fixture(scope="session")
def dev_stack(
    postgres_admin_url: str, redis_url: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Every service its own process over the real PostgreSQL, Redis and RabbitMQ, on a database of its own."""
    with scratch_database(postgres_admin_url) as database_url:
        yield from _dev_stack(database_url, redis_url, rabbitmq_url, tmp_path_factory)


def _dev_stack(
    database_url: str, redis_url: str, rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    # Its own database, cache and bus namespaces: the stack's engine claims every bot it finds and consumes
    # every command on its queues, and must meet neither other tests' bots nor other stacks' messages
    # (pytest-xdist workers, other checkouts on this machine).
    namespace = f"e2e{uuid.uuid4().hex[:8]}"
    stack = Stack(
        database_url=database_url,
        redis_url=redis_url,
        rabbitmq_url=rabbitmq_url,
        ports={s.name: free_port() for s in SERVICES},
        log_dir=tmp_path_factory.mktemp("dev-logs"),
        cache_namespace=namespace,
        bus_namespace=namespace,
        extra_env={"gateway": {"TRUSTED_PROXIES": TRUSTED}, "auth": {"ADMIN_EMAILS": ADMIN_EMAIL}},
        # Two engine replicas (`engine-1`, `engine-2`), as `make dev` and compose run them: they share the
        # bots' partitions, and one killed has its bots taken over by the other.
        engine_replicas=2,
        # As `make dev` and compose run it: a process that dies is started again, and the tests that kill one
        # rely on that (or hold it down with `kill(..., hold=True)` while they look at the outage).
    )
    try:
        stack.migrate()
        stack.start(ready_timeout=STARTUP_SECONDS)
        yield stack
    finally:
        stack.stop()
        sweep_namespaces(rabbitmq_url, [namespace])


@pytest.fixture(scope="session")
def dev_system(dev_stack: Stack) -> System:
    """The dev topology's gateway and simulator."""
    return System(
        f"http://127.0.0.1:{dev_stack.ports['gateway']}",
        f"http://127.0.0.1:{dev_stack.ports['exchange-sim']}",
    )


@pytest.fixture(scope="session")
def embedded_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """`make run`'s one process on a scratch SQLite file."""
    with embedded(
        tmp_path_factory.mktemp("embedded"), ROOT, TRUSTED_PROXIES=TRUSTED, ADMIN_EMAILS=ADMIN_EMAIL
    ) as system:
        yield system


@pytest.fixture(params=["embedded", "dev"])
def system(request: pytest.FixtureRequest) -> System:
    """The same tests against `make run` and `make dev`."""
    found = request.getfixturevalue(f"{request.param}_system")
    assert isinstance(found, System)
    return found


@pytest.fixture
def gateway_url(system: System) -> str:
    """The gateway's base URL of the system under test."""
    return system.gateway


@pytest.fixture
def client_ip() -> str:
    """A client address of its own per test (sent as X-Forwarded-For through the trusted proxy)."""
    return random_client_ip()

"""Metrics of the running topologies: each `make dev` process's own /metrics counts what it served; the
gateway's public port gives an anonymous client none (/metrics nor /api/metrics); `make run`'s one endpoint
behind METRICS_TOKEN carries every service's figures, the engine's included."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from launcher.dev import Stack
from launcher.testing import System, embedded

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """The exposition, parsed by prometheus_client's own parser: (name, labels) → value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests_of(samples: Samples, service: str, route: str, status: str) -> float:
    labels = frozenset({"service": service, "method": "POST", "route": route, "status": status}.items())
    return samples.get(("gridbot_http_requests_total", labels), 0.0)


async def test_the_gateway_gives_an_anonymous_client_no_metrics(gateway_url: str, client_ip: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, headers={"x-forwarded-for": client_ip}) as c:
        for path in ("/metrics", "/api/metrics"):
            for headers in ({}, {"authorization": "Bearer guessed-token"}):
                r = await c.get(path, headers=headers)
                assert r.status_code in (401, 404), (path, r.status_code)
                assert "gridbot_" not in r.text and "process_" not in r.text


async def test_each_dev_process_counts_what_it_served_on_its_own_port(
    dev_stack: Stack, client_ip: str
) -> None:
    auth_metrics = f"http://127.0.0.1:{dev_stack.port('auth')}/metrics"
    gateway = f"http://127.0.0.1:{dev_stack.port('gateway')}"
    login = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrongPassword123"}
    async with httpx.AsyncClient(timeout=10) as c:
        before = parse((await c.get(auth_metrics)).text)
        r = await c.post(f"{gateway}/api/auth/login", json=login, headers={"x-forwarded-for": client_ip})
        assert r.status_code == 401, r.text
        after = parse((await c.get(auth_metrics)).text)
        engine = parse((await c.get(f"http://127.0.0.1:{dev_stack.port('engine-1')}/metrics")).text)
    route = "/api/auth/login"
    assert requests_of(after, "auth", route, "401") - requests_of(before, "auth", route, "401") == 1
    names = {name for name, _ in engine}
    assert {
        "gridbot_engine_ticks_consumed_total",
        "gridbot_engine_bots_driven",
        "process_cpu_seconds_total",
    } <= names
    assert any(
        name == "gridbot_http_requests_total" and ("service", "engine") in labels for name, labels in engine
    )


async def test_make_run_serves_the_whole_process_metrics_to_the_token_bearer(
    tmp_path: Path, client_ip: str
) -> None:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    with embedded(tmp_path, ROOT, METRICS_TOKEN=token) as system:
        await _embedded_metrics(system, token, client_ip)


async def _embedded_metrics(system: System, token: str, client_ip: str) -> None:
    async with httpx.AsyncClient(base_url=system.gateway, headers={"x-forwarded-for": client_ip}) as c:
        assert (await c.get("/metrics")).status_code == 401
        r = await c.post("/api/auth/login", json={"email": "no@example.com", "password": "wrongPassword123"})
        assert r.status_code == 401
        r = await c.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200
    samples = parse(r.text)
    # One registry for the one process: the gateway's and auth's requests, and the engine runtime's figures.
    assert requests_of(samples, "auth", "/api/auth/login", "401") == 1
    assert requests_of(samples, "gateway", "proxy:auth", "401") == 1
    names = {name for name, _ in samples}
    assert {
        "gridbot_engine_partitions_ready",
        "gridbot_engine_ticks_consumed_total",
        "process_cpu_seconds_total",
    } <= names

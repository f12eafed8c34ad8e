"""Admission: past a service's cap of requests in flight, a fast 503 instead of a queue."""

from __future__ import annotations

import asyncio

import httpx

from common import metrics
from gateway.testing import Tokens, Upstream, bearer, gateway, make_settings, wait_until

SHED = "gridbot_gateway_shed_total"


def _shed(service: str) -> float:
    return metrics.REGISTRY.get_sample_value(SHED, {"service": service}) or 0.0


def _hold(
    client: httpx.AsyncClient, path: str, tokens: Tokens, count: int, method: str = "GET"
) -> list[asyncio.Task[httpx.Response]]:
    return [
        asyncio.create_task(client.request(method, path, headers=bearer(tokens.access())))
        for _ in range(count)
    ]


async def test_past_the_cap_a_request_is_refused_at_once_and_never_reaches_the_service(
    auth_up: Upstream, bots_up: Upstream, tokens: Tokens
) -> None:
    settings = make_settings(upstream_max_in_flight=2)
    shed_before = _shed("auth")
    async with gateway(settings, {"auth": auth_up.transport(), "bots": bots_up.transport()}) as client:
        held = _hold(client, "/api/auth/_slow", tokens, 2)
        await wait_until(lambda: auth_up.waiting == 2)
        refused = await client.get("/api/auth/me", headers=bearer(tokens.access()))
        other_service = await client.get("/api/bots", headers=bearer(tokens.access()))
        assert not any(task.done() for task in held)
        auth_up.release.set()
        answers = await asyncio.gather(*held)
        after = await client.get("/api/auth/me", headers=bearer(tokens.access()))

    assert refused.status_code == 503
    body = refused.json()["error"]
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert body["details"] == {"service": "auth"}
    assert refused.headers["retry-after"] == "1"
    # Refused before the rate limit was counted: the client's budget is not spent on our overload.
    assert "x-ratelimit-remaining" not in refused.headers
    assert _shed("auth") == shed_before + 1
    # The held ones and the next one were served; the refused one never reached the service.
    assert [a.status_code for a in answers] == [200, 200]
    assert after.status_code == 200
    assert [call["path"] for call in auth_up.calls] == ["/api/auth/me"]
    # Another service's requests are counted apart.
    assert other_service.status_code == 200
    assert len(bots_up.calls) == 1


async def test_a_request_that_failed_upstream_gives_its_place_back(auth_up: Upstream, tokens: Tokens) -> None:
    settings = make_settings(upstream_max_in_flight=1, upstream_timeout_seconds=0.3)
    async with gateway(settings, {"auth": auth_up.transport()}) as client:
        cut_off = await client.get("/api/auth/_slow", headers=bearer(tokens.access()))
        auth_up.release.set()  # the hung request's handler may finish now; the gateway already gave up on it
        served = await client.get("/api/auth/me", headers=bearer(tokens.access()))
    assert cut_off.status_code == 503
    assert "retry-after" not in cut_off.headers  # a timeout, not a refusal
    assert served.status_code == 200


async def test_the_cap_grows_with_the_service_replicas(bots_up: Upstream, tokens: Tokens) -> None:
    # Two replica URLs (the in-process transport serves both): a cap of one request per replica admits two.
    settings = make_settings(upstream_max_in_flight=1, services={"bots": ["http://b1", "http://b2"]})
    async with gateway(settings, {"bots": bots_up.transport()}) as client:
        held = _hold(client, "/api/bots/_slow", tokens, 2)
        await wait_until(lambda: bots_up.waiting == 2)
        refused = await client.get("/api/bots", headers=bearer(tokens.access()))
        bots_up.release.set()
        answers = await asyncio.gather(*held)
    assert [a.status_code for a in answers] == [200, 200]
    assert refused.status_code == 503
    assert bots_up.calls == []


async def test_writes_get_through_where_reads_are_refused(bots_up: Upstream, tokens: Tokens) -> None:
    settings = make_settings(upstream_max_in_flight=2)
    async with gateway(settings, {"bots": bots_up.transport()}) as client:
        reads = _hold(client, "/api/bots/b1/_slow", tokens, 2)
        await wait_until(lambda: bots_up.waiting == 2)
        refused_read = await client.get("/api/bots", headers=bearer(tokens.access()))
        writes = _hold(client, "/api/bots/b1/_slow", tokens, 2, method="POST")
        await wait_until(lambda: bots_up.waiting == 4)
        refused_write = await client.post("/api/bots/b1/stop", headers=bearer(tokens.access()))
        bots_up.release.set()
        answers = await asyncio.gather(*reads, *writes)
    assert refused_read.status_code == 503
    assert [a.status_code for a in answers] == [200] * 4
    # Twice the cap in flight: a write is refused too.
    assert refused_write.status_code == 503
    assert refused_write.headers["retry-after"] == "1"
    assert bots_up.calls == []

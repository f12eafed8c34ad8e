"""The gateway's metrics are never public: no token, no metrics; /api/metrics is never a metrics route."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from common.testing.infra import free_port
from gateway.testing import gateway, make_settings, wait_until

TOKEN = "metrics-token-for-the-gateway-tests-0123456789"


def exported(text: str) -> set[tuple[str, str]]:
    """(sample name, service label) of every sample: the text parses as Prometheus exposition."""
    return {
        (s.name, s.labels.get("service", ""))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def assert_no_metrics(response: httpx.Response) -> None:
    assert response.status_code in (401, 404)
    assert "gridbot_" not in response.text and "process_" not in response.text
    assert response.json()["success"] is False


async def test_without_a_token_or_port_the_gateway_serves_no_metrics() -> None:
    async with gateway(make_settings()) as client:
        for path in ("/metrics", "/api/metrics", "/api/metrics/"):
            assert_no_metrics(await client.get(path))
            assert_no_metrics(await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}))


async def test_with_a_token_only_its_bearer_gets_the_metrics() -> None:
    async with gateway(make_settings(metrics_token=TOKEN)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert_no_metrics(response)
        assert (await client.get("/health")).status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert_no_metrics(await client.get("/api/metrics", headers=bearer))
        response = await client.get("/metrics", headers=bearer)
    assert response.status_code == 200
    names = exported(response.text)
    assert ("gridbot_http_requests_total", "gateway") in names
    assert ("gridbot_gateway_ws_connections", "") in names


async def test_with_a_metrics_port_the_metrics_live_there_alone() -> None:
    port = free_port()
    settings = make_settings(metrics_token=TOKEN, metrics_port=port)
    async with gateway(settings) as client:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert_no_metrics(await client.get("/metrics", headers=bearer))
        assert (await client.get("/health")).status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:
            response = await scraper.get("/metrics")
            assert response.status_code == 200
            assert (await scraper.get("/api/metrics")).status_code == 404
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }
    health = frozenset({"service": "gateway", "method": "GET", "route": "/health", "status": "200"}.items())
    assert samples[("gridbot_http_requests_total", health)] >= 1
    # The listener stops with the gateway.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:

        async def closed() -> bool:
            try:
                await scraper.get("/metrics")
            except httpx.ConnectError:
                return True
            return False

        await wait_until(closed)

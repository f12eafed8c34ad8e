"""The kit's metrics: every app's GET /metrics parses and counts the requests it served, by route template."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import bearer_matches, family_names
from common.web import create_app, ok


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition by (name, labels), parsed with prometheus_client's own parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def probe_app() -> FastAPI:
    app = create_app(title="gridbot probe")

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> object:
        return ok({"id": thing_id})

    return app


def key(route: str, status: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"service": "probe", "method": "GET", "route": route, "status": status}
    return "gridbot_http_requests_total", frozenset(labels.items())


async def test_metrics_parse_and_count_each_request_by_its_route_template() -> None:
    app = probe_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as http:
        before = samples((await http.get("/metrics")).text)
        for thing_id in ("a", "b", "c"):
            assert (await http.get(f"/things/{thing_id}")).status_code == 200
        assert (await http.get("/no/such/path")).status_code == 404
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    # Three requests, one series: the template, never the ids (bounded cardinality).
    assert after[key("/things/{thing_id}", "200")] - before.get(key("/things/{thing_id}", "200"), 0) == 3
    assert after[key("unmatched", "404")] - before.get(key("unmatched", "404"), 0) == 1
    assert not any(dict(labels).get("route", "").startswith("/things/a") for _, labels in after)
    duration = (
        "gridbot_http_request_duration_seconds_count",
        frozenset({"service": "probe", "method": "GET", "route": "/things/{thing_id}"}.items()),
    )
    assert after[duration] - before.get(duration, 0) == 3
    assert after[("process_resident_memory_bytes", frozenset())] > 0


def test_every_kit_metric_is_named_with_the_prefix_and_documented() -> None:
    from common import metrics

    for family in metrics.REGISTRY.collect():
        assert family.documentation, family.name
        assert family.name.startswith(("gridbot_", "process_")), family.name
    names = family_names()
    assert {"gridbot_bus_messages_dead_lettered_total", "gridbot_exchange_calls_total"} <= names
    assert "gridbot_http_request_duration_seconds_bucket" in names


def test_bearer_tokens_are_compared_exactly() -> None:
    assert bearer_matches("Bearer s3cret-token", "s3cret-token")
    assert bearer_matches("bearer s3cret-token", "s3cret-token")
    assert not bearer_matches("Bearer s3cret-token2", "s3cret-token")
    assert not bearer_matches("Basic s3cret-token", "s3cret-token")
    assert not bearer_matches(None, "s3cret-token")
    assert not bearer_matches("Bearer ", "")

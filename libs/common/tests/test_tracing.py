"""Traces across HTTP, the outbox and the bus (in-memory span exporter), trace ids in log lines, error hooks."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import MetaData

from common import errortracking, tracing
from common.bus import Bus, Envelope, InMemoryBus, RabbitBus
from common.db import create_engine, create_session_factory
from common.logging import JsonFormatter
from common.outbox import OutboxRelay, enqueue, outbox_table
from common.testing.wait import eventually
from common.web import create_app, ok

EXCHANGE = "trace-test"
SECRET = "sk-live-0123456789abcdef"


@pytest.fixture(params=["memory", "rabbitmq"])
async def bus(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Bus]:
    if request.param == "memory":
        memory = InMemoryBus(namespace)
        await memory.start()
        yield memory
        await memory.close()
        return
    rabbit = RabbitBus(request.getfixturevalue("rabbitmq_url"), namespace)
    await rabbit.start()
    try:
        yield rabbit
    finally:
        await rabbit.delete_topology()
        await rabbit.close()


class Seen:
    """What a consumer saw: the envelope and the log line it wrote while handling it."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.lines: list[dict[str, Any]] = []

    def record(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)
        record = logging.LogRecord(
            "consumer", logging.INFO, __file__, 0, "handled %s", (envelope.type,), None
        )
        self.lines.append(json.loads(JsonFormatter("test").format(record)))


def trace_ids(spans: tuple[ReadableSpan, ...]) -> set[str]:
    return {format(s.context.trace_id, "032x") for s in spans if s.context is not None}


async def test_one_trace_from_http_through_the_outbox_and_two_bus_hops(
    spans: InMemorySpanExporter, bus: Bus, tmp_path: Path
) -> None:
    metadata = MetaData()
    table = outbox_table(metadata, "trace_outbox")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trace.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    factory = create_session_factory(engine)
    relay = OutboxRelay(factory, bus, table)
    first, second = Seen(), Seen()

    async def on_created(envelope: Envelope) -> None:
        first.record(envelope)
        # A consumer that publishes directly: the next hop continues the same trace.
        await bus.publish(EXCHANGE, "thing.followed", {"n": 2})

    async def on_followed(envelope: Envelope) -> None:
        second.record(envelope)

    await bus.subscribe("trace-created", EXCHANGE, ["thing.created"], on_created)
    await bus.subscribe("trace-followed", EXCHANGE, ["thing.followed"], on_followed)

    app = create_app(title="gridbot tracetest")

    @app.post("/things")
    async def create_thing() -> object:
        async with factory() as session:
            await enqueue(session, table, EXCHANGE, "thing.created", {"n": 1})
            await session.commit()  # published after the commit, by the relay
        return ok({"done": True})

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.post("/things", headers={"x-request-id": "req-trace-1"})
        assert response.status_code == 200
        assert await relay.drain() == 1
        await eventually(lambda: len(second.envelopes) == 1, timeout=10)
    finally:
        await engine.dispose()

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind is SpanKind.SERVER]
    consumers = [s for s in finished if s.kind is SpanKind.CONSUMER]
    assert len(server) == 1 and len(consumers) == 2
    trace_id = format(server[0].context.trace_id, "032x")  # type: ignore[union-attr]
    # The outbox row kept the request's context: published later, by the relay, outside any request.
    assert first.envelopes[0].traceparent is not None and trace_id in first.envelopes[0].traceparent
    assert trace_ids(tuple(consumers)) == {trace_id}
    # The second hop's parent is the first consumer's span, not the request's.
    follow = next(s for s in consumers if s.name.startswith("thing.followed"))
    created = next(s for s in consumers if s.name.startswith("thing.created"))
    assert follow.parent is not None and follow.parent.span_id == created.context.span_id  # type: ignore[union-attr]
    for line in (first.lines[0], second.lines[0]):
        assert line["trace_id"] == trace_id
        assert line["request_id"] == "req-trace-1"
    # SQL statements of the request are spans of its trace; the relay's polling (no parent) made none.
    sql = [
        s
        for s in finished
        if s.kind is SpanKind.CLIENT and s.name.split()[0] in {"INSERT", "SELECT", "UPDATE"}
    ]
    assert sql and trace_ids(tuple(sql)) == {trace_id}


async def test_tracing_off_sends_no_context_and_logs_no_trace_id() -> None:
    assert not tracing.enabled()
    bus = InMemoryBus("off")
    await bus.start()
    seen = Seen()

    async def handler(envelope: Envelope) -> None:
        seen.record(envelope)

    try:
        await bus.subscribe("q", EXCHANGE, ["x"], handler)
        envelope = await bus.publish(EXCHANGE, "x", {})
        await eventually(lambda: len(seen.envelopes) == 1)
    finally:
        await bus.close()
    assert envelope.traceparent is None
    assert "trace_id" not in seen.lines[0]
    assert tracing.current_traceparent() is None and tracing.outgoing_headers() == ()


def build_failing_app() -> FastAPI:
    app = create_app(title="gridbot errtest")

    @app.get("/explode")
    async def explode() -> object:
        raise RuntimeError(f"exchange refused apiKey={SECRET} with Bearer {SECRET}")

    return app


async def test_unhandled_route_error_reaches_the_hook_with_its_trace_id_and_no_secret(
    spans: InMemorySpanExporter,
) -> None:
    reports: list[errortracking.Report] = []
    errortracking.add_hook(reports.append)
    try:
        transport = httpx.ASGITransport(app=build_failing_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(
                "/explode", headers={"authorization": f"Bearer {SECRET}", "x-request-id": "req-err-1"}
            )
    finally:
        errortracking.remove_hook(reports.append)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert len(reports) == 1
    report = reports[0]
    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert report.trace_id == format(server[0].context.trace_id, "032x")  # type: ignore[union-attr]
    assert report.request_id == "req-err-1"
    assert report.type == "RuntimeError" and report.tags == {"route": "/explode"}
    assert SECRET not in report.message and SECRET not in report.stack
    assert "[REDACTED]" in report.message


def test_sentry_before_send_scrubs_keys_and_drops_request_data() -> None:
    event: dict[str, Any] = {
        "request": {"headers": {"Authorization": f"Bearer {SECRET}"}},
        "user": {"ip_address": "10.0.0.1"},
        "extra": {"api_key": SECRET, "note": f"signature={SECRET}"},
        "exception": {"values": [{"type": "RuntimeError", "value": f"apiKey: {SECRET}"}]},
    }
    scrubbed = errortracking.scrub_event(event)
    assert SECRET not in json.dumps(scrubbed)
    assert "request" not in scrubbed and "user" not in scrubbed
    assert scrubbed["exception"]["values"][0]["type"] == "RuntimeError"


def test_sentry_is_initialised_only_with_a_dsn() -> None:
    assert errortracking.configure_error_tracking("test", env={}) is None
    assert tracing.configure_tracing("test", env={}) is False
    assert tracing.configure_tracing("test", env={"OTEL_TRACES_EXPORTER": "none"}) is False
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}) == []
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "console,otlp"}) == ["console", "otlp"]


async def test_a_dead_lettered_message_reaches_the_hook_with_its_trace_id(
    spans: InMemorySpanExporter,
) -> None:
    reports: list[errortracking.Report] = []
    errortracking.add_hook(reports.append)
    bus = InMemoryBus("dead", retry_backoff=0.001)
    await bus.start()

    async def failing(_: Envelope) -> None:
        raise ValueError(f"cannot use secret={SECRET}")

    try:
        await bus.subscribe("failing", EXCHANGE, ["bad"], failing, max_retries=2)
        with tracing.span("publisher"):
            envelope = await bus.publish(EXCHANGE, "bad", {}, request_id="req-dead-1")
        await eventually(lambda: len(reports) == 1)
        assert len(await bus.dead_letters("failing")) == 1
    finally:
        errortracking.remove_hook(reports.append)
        await bus.close()
    assert envelope.traceparent is not None
    assert reports[0].trace_id == envelope.traceparent.split("-")[1]
    assert reports[0].request_id == "req-dead-1"
    assert reports[0].tags == {"queue": "dead.failing", "message_type": "bad"}  # the broker-side name
    assert SECRET not in reports[0].message and SECRET not in reports[0].stack


def test_the_sentry_hook_sends_the_trace_id_and_no_secret(spans: InMemorySpanExporter) -> None:
    import sentry_sdk
    from sentry_sdk.envelope import Envelope as SentryEnvelope
    from sentry_sdk.transport import Transport

    sent: list[dict[str, Any]] = []

    class Keep(Transport):
        def capture_envelope(self, envelope: SentryEnvelope) -> None:
            sent.extend(item.payload.json for item in envelope.items if item.payload.json is not None)

    hook = errortracking.configure_error_tracking(
        "test", env={"SENTRY_DSN": "https://public@sentry.invalid/1"}, transport=Keep
    )
    assert hook is not None
    try:
        with tracing.span("request") as link:
            try:
                raise RuntimeError(f"refused apiKey={SECRET}")
            except RuntimeError as exc:
                errortracking.report(exc, route="/x")
        sentry_sdk.flush()
    finally:
        errortracking.remove_hook(hook)
        sentry_sdk.init()  # no DSN: the SDK is off again
    assert link is not None and len(sent) == 1
    event = sent[0]
    assert event["tags"]["trace_id"] == format(link.context.trace_id, "032x")
    assert event["tags"]["route"] == "/x"
    assert SECRET not in json.dumps(event)

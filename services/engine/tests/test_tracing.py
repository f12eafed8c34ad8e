"""The engine's work in its message's trace: a lifecycle command gets a span of the publisher's trace, and the
events it causes (published later from the outbox) carry that trace and request id on; ticks make no span."""

from __future__ import annotations

from engine_support import BotFactory, BotSpec, EventSink, TickPublisher, cache_price, publish_command
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing
from common.bus import RabbitBus
from common.context import request_id_var
from common.contracts.bots import BotEvent
from common.testing.wait import eventually
from engine.runtime import EngineRuntime


async def test_a_start_is_applied_in_its_message_trace_and_its_events_carry_it_on(
    spans: InMemorySpanExporter, engine: EngineRuntime, bus: RabbitBus, bots: BotFactory, events: EventSink
) -> None:
    bot = await bots.create(BotSpec())
    assert engine.cache is not None
    await cache_price(engine.cache, "KRW-BTC", "53500000")
    token = request_id_var.set("req-engine-trace")
    try:
        with tracing.span("bots: POST /api/bots") as link:
            await publish_command(bus, bot, BotEvent.START)
    finally:
        request_id_var.reset(token)
    assert link is not None
    trace_id = format(link.context.trace_id, "032x")
    await eventually(lambda: bool(events.of("bot_status", bot.id)), timeout=10)

    status = next(e for e in events.received if any(ev["type"] == "bot_status" for ev in e.payload["events"]))
    assert status.request_id == "req-engine-trace"
    assert status.traceparent is not None and status.traceparent.split("-")[1] == trace_id

    finished = spans.get_finished_spans()
    applied = [s for s in finished if s.name == "engine.apply CommandWork"]
    assert len(applied) == 1 and applied[0].context.trace_id == link.context.trace_id
    assert any(s.name == "engine.batch" and s.context.trace_id == link.context.trace_id for s in finished)
    # The batch's SQL ran in the trace too.
    assert any(
        s.name.startswith(("INSERT", "UPDATE")) and s.context.trace_id == link.context.trace_id
        for s in finished
    )

    # A tick that fills orders: work of no message's trace, so no engine span at all.
    spans.clear()
    ticks = TickPublisher(bus)
    before = len(events.received)
    await ticks.send(ticks.tick(51_000_000, 53_500_000, 51_000_000))
    await eventually(lambda: len(events.received) > before, timeout=10)
    assert not [s for s in spans.get_finished_spans() if s.name.startswith("engine.")]

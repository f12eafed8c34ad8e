"""OpenTelemetry traces: one trace from the gateway through HTTP calls, bus messages and the engine's work.

Off unless `OTEL_TRACES_EXPORTER` names an exporter (`console`, `otlp`; the standard `OTEL_*` variables
configure them, `OTEL_SDK_DISABLED=true` wins). Off, nothing is instrumented and every helper here returns
at its first test of `enabled()`: the process runs the API's no-op tracer and pays no per-request span.

The context travels as a W3C `traceparent`: in HTTP headers (the FastAPI and httpx instrumentations, and
the gateway's own HTTP/1 client by `outgoing_headers()`), and in the bus envelope's `traceparent` field,
written into the outbox row with the change it announces so that a message published after the commit
continues the request's trace. Consumers run their handler in a span that is a child of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common.context import request_id_var

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

    from common.contracts.envelope import Envelope

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
_EXCLUDED_URLS = "/health,/metrics"


class _State:
    enabled = False
    provider: TracerProvider | None = None
    tracer: Tracer = trace.NoOpTracer()
    instrumented_httpx = False


_state = _State()


def enabled() -> bool:
    """True when this process records spans."""
    return _state.enabled


def tracer() -> Tracer:
    """The kit's tracer (the no-op one while tracing is off)."""
    return _state.tracer


def exporter_names(env: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names; empty (tracing off) when unset, `none` or SDK disabled."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    return [n for n in names if n and n != "none"]


def configure_tracing(service: str, env: Mapping[str, str] = os.environ) -> bool:
    """Start tracing from the `OTEL_*` variables (once per process); True when it is on."""
    if _state.enabled:
        return True
    names = exporter_names(env)
    if not names:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the sampler comes from
    # OTEL_TRACES_SAMPLER(_ARG), the batch processor's limits from OTEL_BSP_*.
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or f"gridbot-{service}"})
    provider = TracerProvider(resource=resource)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    use_provider(provider)
    log.info("tracing on: exporters %s", ",".join(names))
    return True


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # Spans on stdout, one JSON object per line; the JSON log lines go to stderr.
        return ConsoleSpanExporter(out=sys.stdout, formatter=_one_line)
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (console, otlp, none)")


def _one_line(span: Any) -> str:
    return str(span.to_json(indent=None)) + "\n"


def use_provider(provider: TracerProvider) -> None:
    """Record spans with `provider` from now on and instrument httpx (tests pass an in-memory one)."""
    _state.provider = provider
    _state.tracer = provider.get_tracer("gridbot")
    _state.enabled = True
    if not _state.instrumented_httpx:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument(tracer_provider=_ChildOnlyProvider(provider))
        _state.instrumented_httpx = True


def disable() -> None:
    """Stop recording spans (tests); instrumented apps keep their middleware but it records nothing."""
    _state.enabled = False
    _state.tracer = trace.NoOpTracer()
    if _state.instrumented_httpx:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().uninstrument()
        _state.instrumented_httpx = False
    _state.provider = None


def instrument_app(app: FastAPI) -> None:
    """Give every request of `app` a server span continuing the caller's `traceparent` (when tracing is on)."""
    if not _state.enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No spans per ASGI send/receive: a live-update socket would make one per event it pushes.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_state.provider, excluded_urls=_EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


class _ChildOnlyTracer(Tracer):
    """Spans only under an active span: library calls made outside any trace (pollers, ticks, health
    checks) would otherwise each start a trace of their own."""

    def __init__(self, inner: Tracer) -> None:
        self._inner = inner

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kw: Any
    ) -> Any:
        """The inner tracer's span when there is a parent, else the invalid (non-recording) span."""
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._inner.start_span(name, context, *args, **kw)

    @contextlib.contextmanager  # the SDK's own decorator is private
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kw: Any
    ) -> Iterator[Any]:
        """As start_span, made current."""
        if not trace.get_current_span(context).get_span_context().is_valid:
            yield trace.INVALID_SPAN
            return
        with self._inner.start_as_current_span(name, context, *args, **kw) as current:
            yield current


class _ChildOnlyProvider(trace.TracerProvider):
    def __init__(self, inner: trace.TracerProvider) -> None:
        self._inner = inner

    def get_tracer(self, *args: Any, **kw: Any) -> Tracer:
        """A child-only tracer of the inner provider."""
        return _ChildOnlyTracer(self._inner.get_tracer(*args, **kw))


def instrument_engine(engine: AsyncEngine) -> None:
    """A span per SQL statement of `engine` (when tracing is on)."""
    if not _state.enabled:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    class ChildOnlyEngineTracer(EngineTracer):  # type: ignore[misc]  # the instrumentation is untyped
        """Statements outside any span (relay polls, tick batches) return at once, before the instrumentation
        parses the URL and names a span it would not record."""

        def _before_cur_exec(self, conn: Any, cursor: Any, statement: Any, params: Any, *rest: Any) -> Any:
            if not trace.get_current_span().get_span_context().is_valid:
                return statement, params
            return super()._before_cur_exec(conn, cursor, statement, params, *rest)  # type: ignore[no-untyped-call]

    # What SQLAlchemyInstrumentor.instrument(engine=...) does, for any number of engines (the instrumentor
    # is a process-wide singleton that instruments once).
    usage = get_meter("gridbot.sqlalchemy").create_up_down_counter("db.client.connections.usage")
    ChildOnlyEngineTracer(tracer(), engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def name_server_span(name: str) -> None:
    """Rename the current span (a request whose route no router matched: the gateway's proxied paths)."""
    if _state.enabled:
        trace.get_current_span().update_name(name)


def current_traceparent() -> str | None:
    """The current span's W3C traceparent, None when tracing is off or no span is active."""
    if not _state.enabled:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


_NO_HEADERS: tuple[tuple[bytes, bytes], ...] = ()


def outgoing_headers() -> tuple[tuple[bytes, bytes], ...]:
    """`traceparent` (and `tracestate`) for a hand-built outgoing request; empty when tracing is off."""
    if not _state.enabled:
        return _NO_HEADERS  # shared: the gateway's proxy calls this on every request
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return tuple((k.encode(), v.encode("latin-1")) for k, v in carrier.items())


async def _propagate(request: httpx.Request) -> None:
    rid = request_id_var.get()
    if rid is not None and "x-request-id" not in request.headers:
        request.headers["x-request-id"] = rid
    if _state.enabled:
        _PROPAGATOR.inject(request.headers)


def internal_client_hooks() -> dict[str, list[Any]]:
    """httpx `event_hooks` for calls to another service: the current request id (`X-Request-ID`) and trace
    context (`traceparent`, also when the transport is not one the httpx instrumentation wraps)."""
    return {"request": [_propagate]}


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The remote parent a traceparent names (None when absent or malformed)."""
    if not traceparent:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


@contextlib.contextmanager
def consuming(envelope: Envelope, queue: str) -> Iterator[None]:
    """Run a bus handler in a consumer span, child of the publisher's context carried by the envelope."""
    if not _state.enabled:
        yield
        return
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation": "process",
        "messaging.destination.name": queue,
        "messaging.message.id": envelope.message_id,
    }
    with (
        _state.tracer.start_as_current_span(
            f"{envelope.type} process",
            context=context_of(envelope.traceparent),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ),
        _noting(),
    ):
        yield


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a unit of work came from: the request id and trace context of the message that asked for it."""

    request_id: str | None
    context: otel_context.Context | None


def capture() -> Origin | None:
    """The current request id and trace context, for work applied later elsewhere (None when neither)."""
    rid = request_id_var.get()
    ctx = None
    if _state.enabled and trace.get_current_span().get_span_context().is_valid:
        ctx = otel_context.get_current()  # outside any span (a poller): its work starts no trace
    if rid is None and ctx is None:
        return None
    return Origin(rid, ctx)


@contextlib.contextmanager
def resumed(origin: Origin | None, name: str | None = None, links: Sequence[Link] = ()) -> Iterator[None]:
    """Run a unit of work with its origin's request id, in its origin's trace: in a span `name` of it, or
    (no name) in its context as it is, so that messages it writes continue that trace."""
    if origin is None:
        yield
        return
    token = request_id_var.set(origin.request_id)
    try:
        if not _state.enabled or origin.context is None:
            yield
        elif name is None:
            ctx_token = otel_context.attach(origin.context)
            try:
                with _noting():
                    yield
            finally:
                otel_context.detach(ctx_token)
        else:
            with _state.tracer.start_as_current_span(name, context=origin.context, links=links), _noting():
                yield
    finally:
        request_id_var.reset(token)


@contextlib.contextmanager
def batch_span(name: str, origins: Sequence[Origin | None], **attributes: Any) -> Iterator[Link | None]:
    """A span for work of several messages done together: in the first traced one's trace, linked to the
    others'; none at all when no unit of the batch is traced (a batch of ticks)."""
    contexts = (
        [o.context for o in origins if o is not None and o.context is not None] if _state.enabled else []
    )
    if not contexts:
        yield None
        return
    links = [Link(trace.get_current_span(c).get_span_context()) for c in contexts[1:]]
    with (
        _state.tracer.start_as_current_span(
            name, context=contexts[0], links=links, attributes=attributes
        ) as current,
        _noting(),
    ):
        yield Link(current.get_span_context())


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Link | None]:
    """A span (when tracing is on) around a block; yields a link to it for spans of other traces."""
    if not _state.enabled:
        yield None
        return
    with _state.tracer.start_as_current_span(name, attributes=attributes) as current, _noting():
        yield Link(current.get_span_context())


def log_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex, for log lines (None when tracing is off or no span)."""
    if not _state.enabled:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


_RAISED_IN = "_gridbot_trace_id"


@contextlib.contextmanager
def _noting() -> Iterator[None]:
    """Inside a span: an exception leaving it remembers the span's trace (the innermost span it crossed),
    so that it is reported in that trace even where it is caught outside every span (a background task)."""
    try:
        yield
    except Exception as exc:
        if not hasattr(exc, _RAISED_IN):
            ids = log_ids()
            if ids is not None:
                setattr(exc, _RAISED_IN, ids[0])
        raise


def raised_in(exc: BaseException) -> str | None:
    """The trace id of the innermost kit span `exc` was raised in (None: raised outside any)."""
    value = getattr(exc, _RAISED_IN, None)
    return value if isinstance(value, str) else None

"""What metrics and tracing cost per HTTP request and per bus message, in-process (no network, no database).

Each configuration runs in a process of its own (METRICS_ENABLED is read at import): `off` (METRICS_ENABLED=
false, no tracing), `metrics` (the default: metrics on, tracing off), `spans` (metrics on, spans recorded and
dropped: the instrumentation's own cost) and `tracing` (metrics on, spans exported by a batch processor to a
console exporter writing to /dev/null). A kit app (`common.web.create_app`) serves
GET /x through its whole middleware stack, called as ASGI directly; the in-process bus carries messages to a
consumer (inside a span for `tracing`, as a request's messages are). Configurations alternate, each run
`--repeats` times; the medians are printed with the overhead against `off`. The whole-system figures are
bench/gateway.py's and bench/engine.py's (docs/observability.md "Overhead").

    uv run python bench/observability.py [--requests 20000] [--messages 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

CONFIGS = {
    "off": {"METRICS_ENABLED": "false"},
    "metrics": {},
    "spans": {"TRACING_BENCH": "spans"},
    "tracing": {"TRACING_BENCH": "console"},
}


async def http_cost(requests: int) -> float:
    """Microseconds per GET /x through a kit app's middleware and router."""
    from common.web import create_app, ok

    app = create_app(title="gridbot bench")

    @app.get("/x")
    async def x() -> object:
        return ok({"a": 1})

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(200):  # warm-up: route caches, first-call imports
        await app(dict(scope), receive, send)
    began = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - began
    assert set(statuses) == {200}, set(statuses)
    return elapsed / requests * 1e6


async def bus_cost(messages: int) -> float:
    """Microseconds per message published on the in-process bus and handled by a consumer."""
    from common import tracing
    from common.bus import Envelope, InMemoryBus

    bus = InMemoryBus("bench")
    await bus.start()
    done = asyncio.Event()
    seen = 0

    async def handler(_: Envelope) -> None:
        nonlocal seen
        seen += 1
        if seen == messages:
            done.set()

    await bus.subscribe("bench", "bench", ["m"], handler, prefetch=64)
    began = time.perf_counter()
    with tracing.span("request"):
        for n in range(messages):
            await bus.publish("bench", "m", {"n": n})
    await done.wait()
    elapsed = time.perf_counter() - began
    await bus.close()
    return elapsed / messages * 1e6


def child(requests: int, messages: int) -> None:
    """One configuration's figures, as JSON on stdout."""
    import logging

    logging.disable(logging.CRITICAL)  # access lines would measure the logging, not the instrumentation
    if os.environ.get("TRACING_BENCH"):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        from common import tracing

        provider = TracerProvider()
        if os.environ["TRACING_BENCH"] == "console":
            devnull = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=devnull)))
        tracing.use_provider(provider)
    figures = {
        "http_us": asyncio.run(http_cost(requests)),
        "bus_us": asyncio.run(bus_cost(messages)),
    }
    print(json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests, args.messages)
        return
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    for _ in range(args.repeats):
        for name, env in CONFIGS.items():
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    f"--requests={args.requests}",
                    f"--messages={args.messages}",
                ],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    medians = {
        name: {key: statistics.median(run[key] for run in results) for key in ("http_us", "bus_us")}
        for name, results in runs.items()
    }
    base = medians["off"]
    print(f"medians of {args.repeats} runs; {args.requests} requests and {args.messages} messages per run")
    print(f"{'config':<9}{'µs/request':>12}{'vs off':>9}{'µs/message':>12}{'vs off':>9}")
    for name, m in medians.items():
        http, bus = m["http_us"], m["bus_us"]
        print(
            f"{name:<9}{http:>12.1f}{(http / base['http_us'] - 1) * 100:>8.1f}%"
            f"{bus:>12.1f}{(bus / base['bus_us'] - 1) * 100:>8.1f}%"
        )


if __name__ == "__main__":
    main()

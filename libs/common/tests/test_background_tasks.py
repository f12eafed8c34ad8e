"""Background tasks (relays, sweepers, consumers' loops) that die reach the error hooks with their trace id."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import errortracking, tracing
from common.context import request_id_var
from common.errortracking import background_task
from common.testing.wait import eventually

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def reports() -> Iterator[list[errortracking.Report]]:
    seen: list[errortracking.Report] = []
    errortracking.add_hook(seen.append)
    try:
        yield seen
    finally:
        errortracking.remove_hook(seen.append)


async def test_a_loop_started_outside_any_trace_is_reported_in_the_trace_of_the_work_that_killed_it(
    spans: InMemorySpanExporter, reports: list[errortracking.Report]
) -> None:
    work: asyncio.Queue[tracing.Origin | None] = asyncio.Queue()

    async def loop() -> None:  # as a relay or a shard: started at startup, applies traced work
        while True:
            origin = await work.get()
            with tracing.resumed(origin, "apply"):
                raise RuntimeError(f"cannot apply apiKey={SECRET}")

    task = background_task(loop(), name="test-loop")
    token = request_id_var.set("req-bg-1")
    try:
        with tracing.span("request") as link:
            await work.put(tracing.capture())
    finally:
        request_id_var.reset(token)
    await eventually(lambda: len(reports) == 1)
    assert task.done() and isinstance(task.exception(), RuntimeError)
    assert link is not None
    report = reports[0]
    assert report.trace_id == format(link.context.trace_id, "032x")
    assert report.tags == {"task": "test-loop"}
    assert report.type == "RuntimeError"
    assert SECRET not in report.message and SECRET not in report.stack


async def test_a_task_started_in_a_request_is_reported_with_its_trace_and_request_ids(
    spans: InMemorySpanExporter, reports: list[errortracking.Report]
) -> None:
    async def fails() -> None:
        raise ValueError("lost")  # at the task's first step, after background_task returned

    token = request_id_var.set("req-bg-2")
    try:
        with tracing.span("request") as link:
            task = background_task(fails(), name="test-started-in-request")
    finally:
        request_id_var.reset(token)
    await eventually(lambda: len(reports) == 1)
    assert task.done()
    assert link is not None
    assert reports[0].trace_id == format(link.context.trace_id, "032x")
    assert reports[0].request_id == "req-bg-2"
    assert reports[0].tags == {"task": "test-started-in-request"}


async def test_tasks_that_end_or_are_cancelled_are_not_reported(reports: list[errortracking.Report]) -> None:
    async def ends() -> None:
        return None

    done = background_task(ends(), name="test-ends")
    forever = background_task(asyncio.Event().wait(), name="test-cancelled")
    await done
    forever.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await forever
    # The reporting callback was added before either await's wake-up, so it has run by now.
    assert reports == []

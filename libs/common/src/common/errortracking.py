"""Error tracking: unhandled exceptions handed to pluggable hooks with their trace and request ids, scrubbed.

`report()` is called where an exception would otherwise end as a bare 500 (common.web), a dead letter
(common.bus) or the silent end of a background task (`background_task()`: relays, sweepers, consumers' loops). Every hook gets a `Report` whose text fields went through the log redaction (bearer tokens,
JWTs, key fields), so no hook ever sees an API key, a secret or a password. The Sentry hook is installed by
`configure_error_tracking()` only when `SENTRY_DSN` is set; tests add a fake hook with `add_hook()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common import tracing
from common.context import request_id_var
from common.logging import redact, redact_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """One unhandled exception as hooks see it: scrubbed text, ids to find its trace and log lines."""

    exception: BaseException
    type: str
    message: str  # redacted
    stack: str  # redacted
    trace_id: str | None
    request_id: str | None
    tags: dict[str, str] = field(default_factory=dict)


Hook = Callable[[Report], None]

_hooks: list[Hook] = []


def add_hook(hook: Hook) -> None:
    """Report unhandled exceptions to `hook` too."""
    _hooks.append(hook)


def remove_hook(hook: Hook) -> None:
    """Stop reporting to `hook` (absent: nothing)."""
    if hook in _hooks:
        _hooks.remove(hook)


def report(
    exc: BaseException, *, trace_id: str | None = None, request_id: str | None = None, **tags: str
) -> None:
    """Hand an unhandled exception to every hook (the trace id defaults to the innermost span it was raised in,
    else the current one; the request id to the current one); a failing hook is logged, never raised."""
    if not _hooks:
        return
    ids = tracing.log_ids()
    entry = Report(
        exception=exc,
        type=type(exc).__name__,
        message=redact_text(str(exc)),
        stack=redact_text("".join(traceback.format_exception(exc))),
        trace_id=trace_id or tracing.raised_in(exc) or (ids[0] if ids else None),
        request_id=request_id or request_id_var.get(),
        tags={k: redact_text(v) for k, v in tags.items()},
    )
    for hook in list(_hooks):
        try:
            hook(entry)
        except Exception:  # an error tracker that fails must not turn one error into two
            log.warning("error hook %r failed", hook, exc_info=True)


_T = TypeVar("_T")


def background_task(coro: Coroutine[Any, Any, _T], *, name: str) -> asyncio.Task[_T]:
    """`asyncio.create_task` for work nobody awaits until shutdown: an exception that ends it is logged and
    reported at once, with the trace and request ids current where it was started."""
    task = asyncio.create_task(coro, name=name)
    # The callback runs in a copy of this context (the starter's span and request id), which report() reads.
    task.add_done_callback(_report_death)
    return task


def _report_death(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()  # marks it retrieved: asyncio's own "never retrieved" line would come only at GC
    if exc is None:
        return
    log.error("background task %s died", task.get_name(), exc_info=exc)
    report(exc, task=task.get_name())


def scrub_event(event: dict[str, Any], _hint: Any = None) -> dict[str, Any]:
    """Sentry's before_send: every key naming a secret masked, every string redacted, no request data."""
    event.pop("request", None)  # headers (Authorization, cookies) and bodies (keys) never leave
    event.pop("user", None)
    scrubbed: dict[str, Any] = redact(event)
    return scrubbed


def configure_error_tracking(
    service: str, env: Mapping[str, str] = os.environ, **sentry_options: Any
) -> Hook | None:
    """Install the Sentry hook when SENTRY_DSN is set (SENTRY_ENVIRONMENT, SENTRY_RELEASE optional); the hook,
    None without a DSN. `sentry_options` go to sentry_sdk.init as they are (tests: a transport of their own)."""
    dsn = env.get("SENTRY_DSN", "").strip()
    if not dsn:
        return None
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=env.get("SENTRY_ENVIRONMENT") or None,
        release=env.get("SENTRY_RELEASE") or None,
        # Only what report() hands over: no automatic integrations (they would send request bodies and
        # log records), no local variables (a frame can hold a decrypted key); personal data is off by default.
        default_integrations=False,
        auto_enabling_integrations=False,
        include_local_variables=False,
        before_send=scrub_event,  # type: ignore[arg-type]
        server_name=service,
        **sentry_options,
    )
    hook = _SentryHook(service)
    add_hook(hook)
    return hook


class _SentryHook:
    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(self, entry: Report) -> None:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("service", self.service)
            if entry.trace_id:
                scope.set_tag("trace_id", entry.trace_id)
            if entry.request_id:
                scope.set_tag("request_id", entry.request_id)
            for key, value in entry.tags.items():
                scope.set_tag(key, value)
            sentry_sdk.capture_exception(entry.exception)

"""One attempt of one delivery: our signed JSON webhook, or apprise for the chat channels.

The webhook is POSTed to the address the SSRF guard checked (outside development), never follows a redirect,
and counts only a 2xx as delivered. Each attempt carries the same `X-Gridbot-Delivery` id, so a receiver that
answered late or not at all and gets the delivery again can tell it has seen it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass

import apprise
import httpx

from notifier.ssrf import TargetRefusedError, check_target

log = logging.getLogger(__name__)

USER_AGENT = "gridbot-notifier/1"
_ERROR_TEXT = 300


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt went: delivered, or why not and whether trying again may help."""

    delivered: bool
    error: str | None = None
    retry: bool = True


DELIVERED = Outcome(True)


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body keyed with the secret>` (the X-Gridbot-Signature header)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """POSTs signed JSON bodies (one shared connection pool, redirects off)."""

    def __init__(self, timeout: float, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        # No kept-alive connections: a pooled connection is keyed by the address, and one verified for one
        # name must never carry another name's request that happens to resolve to the same address.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send(self, url: str, secret: str | None, delivery_id: str, event: str, body: bytes) -> Outcome:
        """One attempt: checked (and pinned) target, signed body, 2xx or a reason."""
        try:
            # Checked again at every attempt: a name may resolve elsewhere since the channel was saved.
            target = await check_target(url, allow_private=self._allow_private)
        except TargetRefusedError as refused:
            return Outcome(False, f"target refused: {refused}", retry=False)
        request_url, headers, extensions = target.pinned()
        headers.update(
            {
                "Content-Type": "application/json",
                "X-Gridbot-Delivery": delivery_id,
                "X-Gridbot-Event": event,
            }
        )
        if secret:
            headers["X-Gridbot-Signature"] = signature(secret, body)
        try:
            response = await self._client.post(
                request_url, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT])
        if 200 <= response.status_code < 300:
            return DELIVERED
        if response.is_redirect:
            # A redirect could lead anywhere, a private address included: never followed, never retried.
            location = response.headers.get("location", "")
            return Outcome(
                False,
                f"HTTP {response.status_code}: redirect to {location} not followed"[:_ERROR_TEXT],
                retry=False,
            )
        return Outcome(False, f"HTTP {response.status_code}")


async def send_apprise(url: str, title: str, body: str, within: float) -> Outcome:
    """One attempt through apprise (Telegram, Slack, Discord, ...): True from apprise is delivered."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return Outcome(False, "the channel's apprise URL is not understood", retry=False)
    try:
        async with asyncio.timeout(within):
            sent = await notifier.async_notify(body=body, title=title)
    except TimeoutError:
        return Outcome(False, f"no answer within {within:g} s")
    return DELIVERED if sent else Outcome(False, "the channel refused the message or could not be reached")

"""The one retry policy: capped exponential backoff with jitter, built from tenacity's wait strategies.

Every retry and reconnection in the system takes its delays from a `Backoff` configured for its use (the
numbers live with the use: exchange calls, stream reconnections, bus redeliveries, catch-up
reconciliations). The n-th delay (n >= 1) is `min(cap, base * 2**(n-1))`, jittered:

- `Jitter.NONE`: exactly that (a bus redelivery's pace: predictable, and nothing to spread out);
- `Jitter.FULL`: uniform in [0, that] (AWS's "full jitter": calls that failed together retry spread out);
- `Jitter.HALF`: half fixed, half uniform (a reconnection never comes back at once, yet peers spread out).

`retrying` gives a bounded retry of one call (tenacity's `AsyncRetrying`); loops whose attempt count comes
from elsewhere (a broker's delivery count, a per-key refusal count, a connection's life) ask `delay(n)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_fixed,
    wait_random_exponential,
)
from tenacity.wait import wait_base

__all__ = ["Backoff", "Jitter", "RetryCallState"]


class Jitter(StrEnum):
    """How much of each delay is random."""

    NONE = "none"
    FULL = "full"
    HALF = "half"


# A RetryCallState needs a retrying object to belong to; `delay` only reads its attempt number.
_DETACHED = AsyncRetrying()


@dataclass(frozen=True)
class Backoff:
    """Delays before retry number n (1-based): `min(cap, base * 2**(n-1))`, jittered, plus a fixed `pause`."""

    base: float
    cap: float
    jitter: Jitter = Jitter.HALF
    pause: float = 0.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.pause < 0:
            raise ValueError(f"a backoff's delays cannot be negative (got {self})")

    def wait(self) -> wait_base:
        """The tenacity wait strategy of this policy."""
        strategy: wait_base
        if self.jitter is Jitter.NONE:
            strategy = wait_exponential(multiplier=self.base, max=self.cap)
        elif self.jitter is Jitter.FULL:
            strategy = wait_random_exponential(multiplier=self.base, max=self.cap)
        else:
            half_base, half_cap = self.base / 2, self.cap / 2
            strategy = wait_exponential(multiplier=half_base, max=half_cap) + wait_random_exponential(
                multiplier=half_base, max=half_cap
            )
        return strategy + wait_fixed(self.pause) if self.pause else strategy

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (1-based), for loops that count attempts themselves."""
        if attempt < 1:
            raise ValueError("attempt must be >= 1")
        state = RetryCallState(_DETACHED, None, (), {})
        state.attempt_number = attempt
        return float(self.wait()(state))

    def retrying(
        self,
        attempts: int,
        *,
        retry: Callable[[BaseException], bool],
        before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
    ) -> AsyncRetrying:
        """Up to `attempts` tries of one call, retrying the exceptions `retry` accepts; the last one is raised."""
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        return AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self.wait(),
            retry=retry_if_exception(retry),
            before_sleep=before_sleep,
            reraise=True,
        )

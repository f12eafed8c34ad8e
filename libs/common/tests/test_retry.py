"""The retry policy: the shape of its delays, and a bounded retry that stops and surfaces what it may not retry."""

from __future__ import annotations

import pytest

from common.retry import Backoff, Jitter, RetryCallState


def _ceiling(n: int, base: float, cap: float) -> float:
    return min(cap, base * 2 ** min(n - 1, 60))


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    policy = Backoff(0.1, 0.5, Jitter.NONE)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 10_000)] == [0.1, 0.2, 0.4, 0.5, 0.5]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 40, 5000])
def test_jittered_delays_stay_in_their_window(n: int) -> None:
    ceiling = _ceiling(n, 2.0, 300.0)
    full = [Backoff(2.0, 300.0, Jitter.FULL).delay(n) for _ in range(200)]
    half = [Backoff(2.0, 300.0, Jitter.HALF).delay(n) for _ in range(200)]
    paused = [Backoff(2.0, 300.0, Jitter.FULL, pause=0.5).delay(n) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in full)
    assert all(ceiling / 2 <= d <= ceiling for d in half)
    assert all(0.5 <= d <= ceiling + 0.5 for d in paused)
    # Jittered: not one fixed value (200 equal draws would be a broken random source).
    assert len(set(full)) > 1 and len(set(half)) > 1


def test_negative_delays_and_attempts_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(-1.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0).delay(0)
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0).retrying(0, retry=lambda exc: True)


async def test_retrying_tries_the_allowed_number_of_times_and_raises_the_last_error() -> None:
    calls: list[int] = []
    slept: list[int] = []

    async def flaky() -> str:
        calls.append(len(calls) + 1)
        raise ConnectionError(f"try {len(calls)}")

    def before_sleep(state: RetryCallState) -> None:
        slept.append(state.attempt_number)

    retrying = Backoff(0.001, 0.002, Jitter.FULL).retrying(
        3, retry=lambda exc: isinstance(exc, ConnectionError), before_sleep=before_sleep
    )
    with pytest.raises(ConnectionError, match="try 3"):
        await retrying(flaky)
    assert calls == [1, 2, 3]
    assert slept == [1, 2]  # no wait after the last try


async def test_retrying_surfaces_an_error_it_may_not_retry_at_once_and_returns_a_success() -> None:
    calls: list[int] = []

    async def refused() -> str:
        calls.append(1)
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        await Backoff(0.001, 0.002).retrying(5, retry=lambda exc: isinstance(exc, ConnectionError))(refused)
    assert calls == [1]

    async def succeeds_on_the_second_try() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "up"

    assert await Backoff(0.001, 0.002).retrying(5, retry=lambda exc: True)(succeeds_on_the_second_try) == "up"

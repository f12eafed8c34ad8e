"""Backtest jobs on the bus: `POST /backtests` enqueues one (through the outbox), a worker runs it.

Exchange `backtests` (durable topic), routing key `backtest.requested`, payload `BacktestJob`. Delivery is
at least once and a job may be redelivered to another worker when one dies mid-run: the worker's claim in
the database (an attempt counter it must still hold to write) makes every delivery after the first harmless.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

BACKTESTS_EXCHANGE = "backtests"
JOB_REQUESTED = "backtest.requested"


class BacktestJob(BaseModel):
    """Run this backtest (its request and grid are in the backtest schema)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    backtest_id: str = Field(alias="backtestId", min_length=1, max_length=64)
    user_id: str = Field(alias="userId", min_length=1, max_length=64)

"""The engine's own bus contract: fills on `orders` (only the engine publishes and consumes them).

* `order.filled` on the durable topic exchange `orders`: one fill of one order, from a live exchange's
  private stream. Its envelope `message_id` is derived from the exchange order id (paper: the client order
  id) and the fill id, so the same fill detected twice (stream and status check, or a redelivery) is one
  message id, and the consumer's inbox drops the second. A paper fill is the same message, applied by the
  shard in the transaction that detected it and recorded in the inbox under that id (engine.applying.paper_broker).
* User events (`events` exchange, `user.<userId>.events`) are common.contracts.events: the gateway reads
  them too.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from common.contracts import queues

ORDERS_EXCHANGE = "orders"
ORDER_FILLED = "order.filled"
# The queue of `order.filled` and the inbox consumer its fills are recorded under (a paper fill applied in
# the batch that detected it is recorded there too, so any copy of it is dropped the same way).
FILLS_QUEUE = queues.ENGINE_FILLS


def fill_message_id(exchange: str, order_key: str, fill_id: str) -> str:
    """The message id of one fill: the same fill always gets the same id (32 hex characters)."""
    digest = hashlib.sha256(f"{exchange}\x1f{order_key}\x1f{fill_id}".encode()).hexdigest()
    return digest[:32]


class OrderFilledMessage(BaseModel):
    """One fill of one order (decimals travel as exact strings)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    bot_id: str = Field(min_length=1, max_length=64)
    exchange: str = Field(min_length=1, max_length=16)
    mode: Literal["paper", "live"]
    client_order_id: str = Field(min_length=1, max_length=64)
    exchange_order_id: str | None = Field(default=None, max_length=64)
    fill_id: str = Field(min_length=1, max_length=64)
    side: Literal["buy", "sell"]
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_currency: str = Field(min_length=1, max_length=16)
    # True only when the exchange says this fill completed the order (paper: always).
    is_final: bool
    executed_at: datetime
    # When the price move behind this fill was published (paper: the tick's), for latency figures.
    trigger_published_at: datetime | None = None

    @field_serializer("price", "qty", "fee", when_used="json")
    def _decimal_text(self, value: Decimal) -> str:
        return format(value, "f")

    @property
    def order_key(self) -> str:
        """What identifies the order at the exchange: its exchange id, else (paper) our client id."""
        return self.exchange_order_id or self.client_order_id

    @property
    def message_id(self) -> str:
        """The deterministic message id of this fill."""
        return fill_message_id(self.exchange, self.order_key, self.fill_id)

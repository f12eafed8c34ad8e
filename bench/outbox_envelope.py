"""What an outbox relay spends on one row's envelope, in-process: the payload decoded and encoded again
(`Bus.publish` of the row's dict, as relays did until 2026-12-05) against the stored text spliced in
(`Bus.publish_encoded`). The payload is one paper fill's user events as the engine writes them (a trade,
two grid levels, the statistics). Prints µs per row, best of `--repeat` runs of `--number` rows each.

    uv run python bench/outbox_envelope.py [--number 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import timeit
import uuid

import orjson

from common.bus.port import make_envelope
from common.contracts.envelope import Envelope, encoded_with


def _payload() -> str:
    """A fill's user events message, as the engine's outbox row stores it (orjson text)."""
    bot, order = str(uuid.uuid4()), str(uuid.uuid4())
    at = "2026-12-05T21:00:00.123456Z"
    trade = {
        "id": str(uuid.uuid4()), "side": "sell", "price": "97250.12", "quantity": "0.00103",
        "fee": "0.0000010", "feeCurrency": "BTC", "profit": "0.1234", "executedAt": at, "orderId": order,
    }  # fmt: skip
    events = [
        {"type": "trade", "botId": bot, "trade": trade},
        {"type": "grid_level", "botId": bot, "level": {"index": 7, "price": "97250.12", "type": "buy",
                                                     "status": "waiting", "orderId": None, "filledAt": None}},
        {"type": "grid_level", "botId": bot, "level": {"index": 8, "price": "98000.00", "type": "sell",
                                                     "status": "open", "orderId": order, "filledAt": None}},
        {"type": "bot_stats", "botId": bot, "stats": {"totalProfit": "12.3456", "totalTrades": 42,
                                                     "lastExecutedAt": at}},
    ]  # fmt: skip
    return orjson.dumps({"userId": str(uuid.uuid4()), "botId": bot, "events": events}).decode()


def main() -> None:
    """Time both ways of building a row's wire form and print them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = _payload()

    def decoded() -> bytes:
        # asyncpg's JSON codec (SQLAlchemy's deserializer), then the envelope validated and encoded.
        envelope = make_envelope("user.x.events", json.loads(text), uuid.uuid4().hex, None, None)
        return envelope.to_json()

    def spliced() -> bytes:
        return encoded_with(make_envelope("user.x.events", {}, uuid.uuid4().hex, None, None), text)

    assert Envelope.from_json(decoded()).payload == Envelope.from_json(spliced()).payload
    print(f"payload {len(text)} bytes; best of {args.repeat} runs x {args.number:,} rows each")
    for name, build in (("decoded and encoded again", decoded), ("stored text spliced in", spliced)):
        best = min(timeit.repeat(build, number=args.number, repeat=args.repeat)) / args.number
        print(f"  {name:28s} {best * 1e6:6.1f} us/row")


if __name__ == "__main__":
    main()

"""Private streams in a process logging at DEBUG: the keys never reach a log record."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from common.exchanges import Exchange, ExchangeSettings
from common.logging import configure_logging
from common.testing.wait import eventually
from engine.live.client import ExchangeFill
from engine.live.credentials import Keys
from engine.live.streams import PrivateStream
from exchange_sim import SimServer


class _Records(logging.Handler):
    """Every record the root logger handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def debug_logging() -> Iterator[_Records]:
    """The process configured as a service at LOG_LEVEL=DEBUG, every record captured; restored after."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    noisy = {name: logging.getLogger(name).level for name in ("websockets", "ccxt")}
    configure_logging("engine", "DEBUG", json_lines=True)
    capture = _Records()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, old in noisy.items():
            logging.getLogger(name).setLevel(old)


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.")


def _readable(text: str) -> str:
    """The text with every JWT's payload decoded next to it (a JWT carries Upbit's access key)."""
    decoded = [
        base64.urlsafe_b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4)).decode("utf-8", "replace")
        for m in _JWT.finditer(text)
    ]
    return " ".join([text, *decoded])


async def _noop_fill(cid: str, order_id: str, fill: ExchangeFill) -> None:
    return None


async def _noop_closed(cid: str, order_id: str) -> None:
    return None


async def _noop() -> None:
    return None


@pytest.mark.parametrize("exchange", [Exchange.BINANCE, Exchange.UPBIT])
async def test_debug_logging_records_no_key_of_a_private_stream(
    exchange: Exchange, sim: SimServer, sim_http: httpx.AsyncClient, debug_logging: _Records
) -> None:
    created = (
        await sim_http.post("/_sim/accounts", json={"balances": {"USDT": "100", "KRW": "100000"}})
    ).json()
    settings = ExchangeSettings(**{k.lower(): v for k, v in ExchangeSettings.simulator(sim.url).items()})
    stream = PrivateStream(
        exchange,
        settings,
        Keys(created["apiKey"], created["secretKey"]),
        on_fill=_noop_fill,
        on_closed=_noop_closed,
        on_connected=_noop,
    )
    stream.start()
    try:
        await eventually(lambda: stream.connected, timeout=10, message="the private stream never connected")
    finally:
        await stream.close()
    # What our own handler prints must be clean too.
    ours = next(h for h in logging.getLogger().handlers if getattr(h, "_gridbot", False))
    for record in debug_logging.records:
        text = _readable(record.getMessage()) + _readable(ours.format(record))
        assert created["apiKey"] not in text, f"{record.name} logged the API key"
        assert created["secretKey"] not in text, f"{record.name} logged the secret"

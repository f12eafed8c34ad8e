"""The log filter: key fields quoted in free text are masked on the record itself."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common.logging import configure_logging

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def captured() -> Iterator[_Capture]:
    """Logging as a service configures it, at DEBUG, with a handler after ours that sees the records."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("test", "DEBUG", json_lines=True)
    capture = _Capture()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(
    "template",
    [
        # The Binance user-stream subscription as a WebSocket library prints a sent frame.
        '> TEXT \'{"method": "userDataStream.subscribe.signature", "params": {"apiKey": "%(key)s", '
        '"timestamp": 1700000000000, "signature": "%(sig)s"}}\'',
        "GET /api/v3/account?timestamp=1700000000000&signature=%(sig)s (X-MBX-APIKEY: %(key)s)",
        "listenKey=%(key)s secret=%(secret)s",
        "{'apiKey': '%(key)s', 'secretKey': '%(secret)s'}",
        "keys: api_key=%(key)s secret_key=%(secret)s",
    ],
)
def test_key_fields_are_masked_on_the_record(captured: _Capture, template: str) -> None:
    logging.getLogger("websockets.client").warning(template, {"key": KEY, "secret": SECRET, "sig": SIGNATURE})
    (line,) = captured.lines
    for secret in (KEY, SECRET, SIGNATURE):
        assert secret not in line
    assert "[REDACTED]" in line


def test_the_frame_loggers_stay_above_debug(captured: _Capture) -> None:
    assert not logging.getLogger("websockets.client").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("ccxt.base.exchange").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("engine.live").isEnabledFor(logging.DEBUG)


def test_a_signal_urls_token_is_masked_in_access_lines(captured: _Capture) -> None:
    token = "3q2-7wPu_xY0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"
    logging.getLogger("gridbot.access").info("%s %s %s", "POST", f"/api/signals/tradingview/{token}", 200)
    logging.getLogger("gateway.proxy").warning(
        "upstream for https://api.example.com/api/signals/tradingview/%s?x=1", token
    )
    assert captured.lines == [
        "POST /api/signals/tradingview/[REDACTED] 200",
        "upstream for https://api.example.com/api/signals/tradingview/[REDACTED]?x=1",
    ]

"""The log filter: key fields quoted in free text are masked on the record itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from common.logging import JsonFormatter, configure_logging, redact_every_pattern, redact_text

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


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-ghi",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln in the message",
        "POST /api/signals/tradingview/3q2-7wPu_xY0aBcDeFg 200",
        "APIKEY=abc123 and Api-Key: def456",
        "X-MBX-APIKEY: abc123",
        "SECRET=abc SecretKey=def secret_access_key=ghi",
        "SIGNATURE=abc123&x=1",
        "ListenKey=abc123",
        "AccessKey=abc PrivateKey=def",
        "PASSWORD=hunter2 Passphrase=abc",
        "refresh TOKEN=abc123",
    ],
)
def test_the_quick_check_lets_every_secret_through_to_the_patterns(text: str) -> None:
    # The check skips the patterns only for text without any of their words, in any case.
    masked = redact_every_pattern(text)
    assert masked != text
    assert redact_text(text) == masked


def test_text_without_a_secret_word_is_returned_as_it_is() -> None:
    line = "GET /api/bots/6f1c0f5e-3a52-4f7e-9a6e-1f1a4b0f9c11/trades 200"
    assert redact_text(line) is line


def test_a_json_line_holds_what_orjson_cannot_write() -> None:
    formatter = JsonFormatter("test")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "big %s", (2**70,), None)
    record.amount = 2**70  # beyond 64 bits: written by the json module instead
    record.when = object()  # neither can write it natively: its str()
    entry = json.loads(formatter.format(record))
    assert entry["msg"] == f"big {2**70}" and entry["amount"] == 2**70
    assert entry["when"].startswith("<object object")

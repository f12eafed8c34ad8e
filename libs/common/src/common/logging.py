"""JSON logging with the request id (and trace/span ids while tracing) on every line; secrets masked before
they reach a handler."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from common import tracing
from common.context import request_id_var

_SENSITIVE_KEYS = re.compile(
    r"(password|secret|token|authorization|api[_-]?key|encryption[_-]?key|cookie)", re.IGNORECASE
)
# Bearer tokens and JWT-looking strings in free text.
_SENSITIVE_TEXT = re.compile(
    r"(Bearer\s+)[A-Za-z0-9\-_.=]+|eyJ[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*"
)
# A key field quoted in free text: JSON (`"apiKey": "…"`), a query string (`signature=…`) or a header dump
# (`X-MBX-APIKEY: …`), as a WebSocket frame, a URL or an exception message carries them.
_KEY_FIELDS = (
    r"api[_-]?key|x-mbx-apikey|secret(?:[_-]?key)?|signature|listen[_-]?key|access[_-]?key|"
    r"secret[_-]?access[_-]?key|password|passphrase|private[_-]?key|token"
)
_SENSITIVE_FIELD = re.compile(
    rf"""(?P<head>["']?\b(?:{_KEY_FIELDS})\b["']?\s*[:=]\s*["']?)(?P<value>[^"'&\s,;}}\]]+)""",
    re.IGNORECASE,
)
# A URL whose path carries its secret (a TradingView signal URL: the token is the only credential), as the
# access lines and proxy errors of every process print paths.
_SECRET_PATH = re.compile(r"(/signals/tradingview/)[^/\s?#\"']+")
# Loggers that print whole requests, responses or frames at DEBUG, and the level they are held at.
_NOISY_LOGGERS = {"ccxt": logging.WARNING, "websockets": logging.INFO}
# uvicorn adds an ANSI-coloured copy of its message; JSON lines want the plain one only.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


# Every pattern above starts with one of these words (in any case): text without any of them has nothing to
# mask. Most lines (every access line) have none, and a few substring searches cost far less than the
# three patterns' scans.
_TRIGGERS = ("bearer", "eyj", "signals/tradingview", "key", "secret", "signature", "pass", "token")
# Set on a record by RedactingFilter once its message is masked, so the formatter does not mask it again.
_REDACTED = "_gridbot_redacted"


def redact_text(text: str) -> str:
    """Mask bearer tokens, JWTs, key fields (apiKey, signature, listenKey, secret, …) and signal URLs' tokens
    inside free text."""
    lowered = text.lower()
    if not any(word in lowered for word in _TRIGGERS):
        return text
    return redact_every_pattern(text)


def redact_every_pattern(text: str) -> str:
    """`redact_text` without its quick check: every pattern applied to the text."""
    text = _SENSITIVE_TEXT.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)
    text = _SECRET_PATH.sub(lambda m: m.group(1) + "[REDACTED]", text)
    return _SENSITIVE_FIELD.sub(lambda m: m.group("head") + "[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with secrets masked, before any formatter or later handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: the formatter reports it as logging does
        # The message is formatted once, here: the formatter and later handlers read it as it is.
        record.msg, record.args = redact_text(message), None
        setattr(record, _REDACTED, True)
        return True


def redact(value: Any, key: str = "") -> Any:
    """Mask values whose key names a secret, recursively."""
    if key and _SENSITIVE_KEYS.search(key):
        return "[REDACTED]"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": _masked_message(record),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        ids = tracing.log_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                entry[k] = redact(v, k)
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses and json writes (an integer beyond 64 bits)
            return json.dumps(entry, default=str, ensure_ascii=False)


def _masked_message(record: logging.LogRecord) -> str:
    """The record's message with secrets masked (once: RedactingFilter may have done it already)."""
    message = record.getMessage()
    return message if getattr(record, _REDACTED, False) else redact_text(message)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, still redacted and with the request id."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as text."""
        rid = request_id_var.get()
        base = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {_masked_message(record)}"
        if rid:
            base += f" [rid={rid}]"
        ids = tracing.log_ids()
        if ids is not None:
            base += f" [trace={ids[0]}]"
        if record.exc_info:
            base += "\n" + redact_text(self.formatException(record.exc_info))
        return base


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_gridbot", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._gridbot = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(service) if json_lines else TextFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Access logs repeat what our middleware already says, and can carry query strings with tokens.
    logging.getLogger("uvicorn.access").disabled = True
    quiet_wire_loggers()


def quiet_wire_loggers() -> None:
    """Hold the loggers that dump requests and frames at DEBUG above it, whatever the process's level.

    ccxt logs request headers and bodies (API keys, signed JWTs); websockets logs every frame, and the
    Binance user-stream subscription frame carries the API key and its signature.
    """
    for name, level in _NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)

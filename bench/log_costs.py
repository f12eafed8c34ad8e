"""What one log line costs as every service writes it: the JSON access line of a request, and a line whose
message carries a secret to mask (the filter and formatter `common.logging.configure_logging` installs,
written to /dev/null). Prints µs of CPU per line, the median of `--repeats` runs.

Before 2026-12-06's third session (the message formatted and masked twice, three patterns each time, and
written by the json module) the access line took 26.3 µs on this machine; run this on an older checkout to
compare.

    uv run python bench/log_costs.py [--lines 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from common.logging import configure_logging

BOT = "6f1c0f5e-3a52-4f7e-9a6e-1f1a4b0f9c11"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def per_line(lines: int, secret: bool) -> float:
    """µs of CPU per line written through the configured handler."""
    log = logging.getLogger("gridbot.access")
    path = f"/api/bots/{BOT}/trades" + (f"?token={TOKEN}" if secret else "")
    started = time.process_time()
    for _ in range(lines):
        log.info("%s %s %s", "GET", path, 200, extra={"duration_ms": 12.34})
    return (time.process_time() - started) / lines * 1e6


def main() -> None:
    """Configure logging as a service does, then time both kinds of line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure_logging("bench", "INFO", json_lines=True)
    with open("/dev/null", "w") as sink:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
        for label, secret in (("access line", False), ("access line with a token to mask", True)):
            runs = [per_line(args.lines, secret) for _ in range(args.repeats)]
            print(
                f"{label:<34} {statistics.median(runs):6.1f} µs of CPU a line "
                f"(median of {args.repeats} runs of {args.lines:,})"
            )


if __name__ == "__main__":
    main()

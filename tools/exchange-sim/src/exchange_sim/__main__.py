"""`python -m exchange_sim [--host H] [--port P]`: run the simulator as its own process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from common.logging import quiet_wire_loggers
from exchange_sim.server import SimServer
from exchange_sim.settings import SimSettings


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (overriding SIM_* settings) and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m exchange_sim", description=__doc__)
    parser.add_argument("--host", help="interface to listen on (SIM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (SIM_PORT, default 8900)")
    parser.add_argument("--speed", help="candles replayed per second, 0 = paused, 'max' (SIM_REPLAY_SPEED)")
    parser.add_argument("--seed", type=int, help="random walk seed (SIM_SEED)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.speed is not None:
        overrides["replay_speed"] = args.speed
    if args.seed is not None:
        overrides["seed"] = args.seed
    settings = SimSettings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # At SIM_LOG_LEVEL=DEBUG the WebSocket library would print every frame (users' keys and signatures).
    quiet_wire_loggers()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(SimServer(settings).serve_forever())


if __name__ == "__main__":
    main()

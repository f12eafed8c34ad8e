"""The garbage collector of a served process: what its start-up built is taken out of the full passes.

A service imports FastAPI, SQLAlchemy, pydantic, ccxt and its own models and, in its lifespan, loads markets
and builds its routes: hundreds of thousands of objects that live as long as the process. CPython's full
(oldest-generation) pass walks every one of them each time it runs, with the event loop stalled (measured:
over 100 ms for the imports alone on the 2-core bench machine), and under load it runs every few seconds.
`gc.freeze()` once the lifespan has started moves them to the permanent generation, which no pass walks;
garbage made later is collected as before. The engine does the same after loading its bots.

Full passes are also made rarer: after the freeze, CPython's default (a full pass after every 10 middle ones)
still ran one every 7-11 s in the bots service under the 100-user bench (`bench/api_load.py`), each one
stalling the loop for 24-46 ms of CPU over only ~20,000-48,000 unfrozen objects. After 100 middle passes
instead (the engine's thresholds) none ran in a whole bench; almost everything a request allocates dies by
reference count, so cyclic garbage only waits longer.
"""

from __future__ import annotations

import gc

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Young generations as CPython's default (short passes); a full pass after 100 middle ones, not 10.
THRESHOLDS = (700, 10, 100)


class FreezeAfterStartup:
    """ASGI wrapper: when the app's lifespan reports its start-up complete, collect once, then freeze."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                freeze()
            await send(message)

        await self.app(scope, receive, sending)


def freeze() -> None:
    """Collect what start-up left as garbage, exempt every survivor from future passes, make full passes rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)

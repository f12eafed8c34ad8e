"""The garbage collector of a served process: what its start-up built is taken out of the full passes.

A service imports FastAPI, SQLAlchemy, pydantic, ccxt and its own models and, in its lifespan, loads markets
and builds its routes: hundreds of thousands of objects that live as long as the process. CPython's full
(oldest-generation) pass walks every one of them each time it runs, with the event loop stalled (measured:
over 100 ms for the imports alone on the 2-core bench machine), and under load it runs every few seconds.
`gc.freeze()` once the lifespan has started moves them to the permanent generation, which no pass walks;
garbage made later is collected as before. The engine does the same after loading its bots.
"""

from __future__ import annotations

import gc

from starlette.types import ASGIApp, Message, Receive, Scope, Send


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
    """Collect what start-up left as garbage, then exempt every surviving object from future passes."""
    gc.collect()
    gc.freeze()

"""Request-scoped dependencies: the service held by the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from notifier.service import NotificationService


async def _service(request: Request) -> NotificationService:
    service: NotificationService = request.app.state.notification_service
    return service


# The service opens and commits its own transactions, before the route returns its response.
Service = Annotated[NotificationService, Depends(_service)]

"""The public notification routes (served at their public paths: the gateway forwards them unchanged)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.responses import Response

from common.i18n import t
from common.schemas import Success
from common.security import CurrentUser
from common.web import ApiRouter, ok
from notifier.deps import Service
from notifier.schemas import DeliveryList, SettingsRead, TestQueued, UpdateSettingsRequest

router = ApiRouter(prefix="/api/notifications", tags=["notifications"])


@router.get("/settings", response_model=Success[SettingsRead])
async def read_settings(principal: CurrentUser, service: Service) -> Response:
    """The user's channels (secrets never shown), event choices and profit target."""
    return ok((await service.read(principal.user_id)).model_dump())


@router.put("/settings", response_model=Success[SettingsRead])
async def replace_settings(body: UpdateSettingsRequest, principal: CurrentUser, service: Service) -> Response:
    """Replace the settings; webhook targets on private, loopback or link-local addresses are refused
    outside development (VALIDATION_ERROR)."""
    shown = await service.replace(principal.user_id, body)
    return ok(shown.model_dump(), t("알림 설정이 저장되었습니다", "Notification settings saved"))


@router.post("/test", status_code=202, response_model=Success[TestQueued])
async def send_test(principal: CurrentUser, service: Service) -> Response:
    """Queue a test message to every channel (see GET /notifications/deliveries for how each went)."""
    queued = await service.test(principal.user_id)
    return ok(
        queued.model_dump(), t("테스트 알림이 대기열에 추가되었습니다", "Test notification queued"), 202
    )


@router.get("/deliveries", response_model=Success[DeliveryList])
async def list_deliveries(
    principal: CurrentUser,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The user's recent deliveries, newest first, with their outcome."""
    return ok((await service.deliveries(principal.user_id, limit, offset)).model_dump())

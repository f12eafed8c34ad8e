"""GET/PUT /notifications/settings: channels stored with their secrets sealed and never shown, refusals that
change nothing, and webhook targets checked against SSRF outside development."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from common.crypto import generate_key
from common.testing.service import User, error_code, exact_json
from notifier.channels import open_row
from notifier.models import Channel
from notifier.ssrf import TargetRefusedError, check_target

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "webhook-secret-0123456789"


def webhook(url: str = "https://example.com/hook", **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, **extra}


async def test_a_user_starts_without_channels_and_with_trades_opt_in(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await client.get("/api/notifications/settings", headers=user.auth)
    assert response.status_code == 200, response.text
    assert exact_json(response)["data"] == {
        "channels": [],
        "events": ["bot_status", "error", "profit_target"],
        "profitTargetPercent": None,
    }


async def test_settings_are_stored_with_secrets_sealed_and_never_shown(
    client: httpx.AsyncClient, user: User, app: FastAPI
) -> None:
    hook = "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    body = {
        "channels": [
            webhook(secret=SECRET),
            {"type": "telegram", "botToken": TOKEN, "chatId": "-1001234567890"},
            {"type": "slack", "webhookUrl": hook},
        ],
        "events": ["trade", "bot_status"],
        "profitTargetPercent": 12.5,
    }
    response = await client.put("/api/notifications/settings", headers=user.auth, json=body)
    assert response.status_code == 200, response.text
    for shown in (response, await client.get("/api/notifications/settings", headers=user.auth)):
        assert SECRET not in shown.text and TOKEN not in shown.text and "XXXXXXXX" not in shown.text
        data = exact_json(shown)["data"]
        assert [c["type"] for c in data["channels"]] == ["webhook", "telegram", "slack"]
        assert data["channels"][0]["url"] == "https://example.com/hook" and data["channels"][0]["hasSecret"]
        assert data["channels"][1]["chatId"] == "-1001234567890"
        assert data["events"] == ["bot_status", "trade"] and str(data["profitTargetPercent"]) == "12.5"
    async with app.state.session_factory() as session:
        rows = (
            (
                await session.execute(
                    select(Channel)
                    .where(Channel.user_id == uuid.UUID(user.user_id))
                    .order_by(Channel.position)
                )
            )
            .scalars()
            .all()
        )
    ring = app.state.settings.key_ring()
    assert all(row.secret and SECRET not in row.secret and TOKEN not in row.secret for row in rows)
    assert [open_row(ring, row).secret for row in rows] == [SECRET, f"tgram://{TOKEN}/-1001234567890", hook]
    # A sealed secret copied onto another channel does not open there (its AAD names the channel).
    moved = Channel(
        id=rows[1].id, user_id=rows[1].user_id, position=0, type="webhook", config={}, secret=rows[0].secret
    )
    with pytest.raises(Exception, match="authentication failed"):
        open_row(ring, moved)


@pytest.mark.parametrize(
    "body",
    [
        {"channels": [{"type": "sms", "number": "1"}]},
        {"channels": [webhook("ftp://example.com/x")]},
        {"channels": [webhook(secret="short")]},
        {"channels": [{"type": "telegram", "botToken": "nope", "chatId": "1"}]},
        {"channels": [{"type": "discord", "webhookUrl": "https://evil.example/api/webhooks/1/x"}]},
        {"channels": [], "events": ["everything"]},
        {"channels": [], "profitTargetPercent": 0},
        {"channels": [], "profitTargetPercent": "10"},
        {"channels": [webhook()] * 11},
        {"events": ["trade"]},
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    client: httpx.AsyncClient, user: User, body: dict[str, Any]
) -> None:
    before = (await client.get("/api/notifications/settings", headers=user.auth)).json()
    response = await client.put("/api/notifications/settings", headers=user.auth, json=body)
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR", response.text
    assert (await client.get("/api/notifications/settings", headers=user.auth)).json() == before


async def test_every_route_needs_a_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/notifications/settings"),
        ("PUT", "/api/notifications/settings"),
        ("POST", "/api/notifications/test"),
        ("GET", "/api/notifications/deliveries"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED", (method, path)


PRIVATE_TARGETS = [
    "http://169.254.169.254/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://127.0.0.1:8080/hook",
    "http://[::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[fd00:ec2::254]/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://localhost/",
    "http://metadata.google.internal/",
    "http://vm/",  # /etc/hosts: 127.0.0.1 — refused after resolution
]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.settings(environment="production", encryption_key=generate_key())
@pytest.mark.parametrize("url", PRIVATE_TARGETS)
async def test_production_refuses_private_loopback_link_local_and_metadata_targets(
    client: httpx.AsyncClient, user: User, url: str
) -> None:
    response = await client.put(
        "/api/notifications/settings", headers=user.auth, json={"channels": [webhook(url)]}
    )
    assert response.status_code == 400 and error_code(response) == "VALIDATION_ERROR", response.text
    assert response.json()["error"]["details"]["fields"][0]["field"] == "channels.0.url"
    shown = await client.get("/api/notifications/settings", headers=user.auth)
    assert exact_json(shown)["data"]["channels"] == []


async def test_the_guard_resolves_names_and_pins_the_checked_address() -> None:
    with pytest.raises(TargetRefusedError, match="resolves to a loopback address"):
        await check_target("http://vm:9000/x", allow_private=False)
    with pytest.raises(TargetRefusedError, match="does not resolve"):
        await check_target("https://no-such-host.invalid/x", allow_private=False)
    public = await check_target("https://93.184.215.14:8443/hook?x=1", allow_private=False)
    assert public.pinned() == (
        "https://93.184.215.14:8443/hook?x=1",
        {"Host": "93.184.215.14:8443"},
        {"sni_hostname": "93.184.215.14"},
    )
    local = await check_target("http://127.0.0.1:9000/x", allow_private=True)
    assert local.pinned() == ("http://127.0.0.1:9000/x", {}, {})

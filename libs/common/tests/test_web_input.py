"""What a request may carry into any kit app: a clean URL, one caller identity, exact JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from common.schemas import ExactDecimal, ExactNumber, RequestModel
from common.web import ApiRouter, create_app, ok

Amount = Annotated[Decimal, ExactNumber(precision=10, scale=4)]


class Wide(RequestModel):
    amount: ExactDecimal


class Order(RequestModel):
    amount: Amount
    note: str = ""


def build() -> FastAPI:
    app = create_app(title="t")
    router = ApiRouter(prefix="/api/things")

    @router.get("")
    async def list_things(q: str = "") -> object:
        return ok({"q": q})

    @router.post("", status_code=201)
    async def make(body: Order) -> object:
        # The text of the Decimal shows whether it was ever a binary float.
        return ok({"amount": str(body.amount)}, status_code=201)

    @router.get("/{thing_id}")
    async def one(thing_id: str) -> object:
        return ok({"id": thing_id})

    @router.delete("/{thing_id}")
    async def drop(thing_id: str) -> object:
        return ok({"id": thing_id})

    app.include_router(router)
    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def fields(response: httpx.Response) -> list[dict[str, str]]:
    body = response.json()
    assert (response.status_code, body["error"]["code"]) == (400, "VALIDATION_ERROR"), response.text
    found: list[dict[str, str]] = body["error"]["details"]["fields"]
    return found


async def post_raw(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post("/api/things", content=text, headers={"content-type": "application/json"})


@pytest.mark.parametrize("number", ["123456.0001", "0.0001", "100.1000", "-5.5", "1E+2", "1e-4"])
async def test_json_numbers_arrive_digit_for_digit(client: httpx.AsyncClient, number: str) -> None:
    r = await post_raw(client, f'{{"amount": {number}}}')
    assert r.status_code == 201, r.text
    assert Decimal(r.json()["data"]["amount"]) == Decimal(number)
    assert r.json()["data"]["amount"] == str(Decimal(number))


async def test_a_number_a_float_would_round_is_kept_exact() -> None:
    app = create_app(title="t")
    router = ApiRouter()

    @router.post("/n")
    async def n(body: Wide) -> object:
        return ok({"amount": str(body.amount)})

    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(
            "/n", content=b'{"amount": 10.000000000000001}', headers={"content-type": "application/json"}
        )
    assert r.json()["data"]["amount"] == "10.000000000000001"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("1.00001", "at most 4 decimal places"),
        ("1234567.5", "at most 6 digits before the decimal point"),
        ("1e7", "at most 6 digits before the decimal point"),
        ("1e-5", "at most 4 decimal places"),
        ('"1.5"', "must be a number"),
        ("true", "must be a number"),
    ],
)
async def test_more_digits_than_the_field_allows_is_refused(
    client: httpx.AsyncClient, number: str, reason: str
) -> None:
    r = await post_raw(client, f'{{"amount": {number}}}')
    assert fields(r) == [{"field": "amount", "reason": reason}]


@pytest.mark.parametrize(
    "text", ['{"amount": NaN}', '{"amount": Infinity}', '{"amount": -Infinity}', "1" * 5000]
)
async def test_non_json_numbers_are_malformed_json(client: httpx.AsyncClient, text: str) -> None:
    r = await post_raw(client, text)
    assert fields(r) == [{"field": "body", "reason": "malformed JSON"}]


def test_a_kit_app_refuses_a_router_that_would_read_floats() -> None:
    app = create_app(title="t")
    plain = APIRouter()

    @plain.post("/n")
    async def n(body: Wide) -> object:
        return ok()

    with pytest.raises(TypeError, match="ApiRouter"):
        app.include_router(plain)


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/things?q=%00", "q"),
        ("/api/things?q=a%00b", "q"),
        ("/api/things?q=%1b[31m", "q"),
        ("/api/things?q=%FF%FE", "q"),
        ("/api/things?q=%ED%A0%80", "q"),  # a UTF-16 surrogate, UTF-8 encoded
        ("/api/things?%00=x", "query"),
        ("/api/things/%00", "path"),
        ("/api/things/a%FFb", "path"),
        ("/api/things/a%7Fb", "path"),
        ("/api/things?q=" + "x" * 9000, "query"),
        ("/api/things/" + "x" * 9000, "path"),
    ],
)
async def test_urls_with_control_bytes_bad_utf8_or_huge_length_are_refused(
    client: httpx.AsyncClient, url: str, field: str
) -> None:
    r = await client.get(url)
    assert [f["field"] for f in fields(r)] == [field]


async def test_clean_non_ascii_parameters_pass(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/things", params={"q": "비트코인 ✓"})
    assert r.json()["data"] == {"q": "비트코인 ✓"}
    r = await client.get("/api/things/%EB%B9%84%ED%8A%B8")
    assert r.json()["data"] == {"id": "비트"}


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_trailing_slash_is_the_404_envelope_never_a_redirect(
    client: httpx.AsyncClient, method: str
) -> None:
    r = await client.request(method, "/api/things/", json={"amount": 1})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NOT_FOUND"
    assert "location" not in r.headers


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [("PUT", "/api/things", {"GET", "POST"}), ("PATCH", "/api/things/x", {"GET", "DELETE"})],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, url: str, allowed: set[str]
) -> None:
    r = await client.request(method, url)
    assert (r.status_code, r.json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize("name", ["authorization", "cookie", "host", "x-real-ip"])
async def test_a_duplicated_identity_header_is_refused(client: httpx.AsyncClient, name: str) -> None:
    headers = [(name.encode(), b"one"), (name.encode(), b"two")]
    if name != "host":
        headers.append((b"host", b"t"))
    r = await client.get("/api/things", headers=headers)
    assert fields(r) == [{"field": name, "reason": "duplicated header"}]


async def test_duplicated_list_headers_are_fine(client: httpx.AsyncClient) -> None:
    headers = [(b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-for", b"10.0.0.2"), (b"accept", b"*/*")]
    headers.append((b"accept", b"application/json"))
    r = await client.get("/api/things", headers=headers)
    assert r.status_code == 200

"""The interactive docs page works without internet: everything it loads is served by the gateway itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from common.testing.infra import free_port
from gateway.testing import gateway, make_settings

# The type each kind of asset must be served with (browsers refuse a script of another type: nosniff).
EXPECTED_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Assets(HTMLParser):
    """Every URL the page makes the browser load: <script src>, <link href>, <img src>."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


async def test_docs_page_loads_only_what_the_gateway_serves() -> None:
    settings = make_settings(services={"auth": f"http://127.0.0.1:{free_port()}"})
    async with gateway(settings) as client:
        page = await client.get("/api-docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # No absolute or protocol-relative URL anywhere in the page (markup or its inline script).
        assert not re.search(r"(https?:)?//[A-Za-z0-9]", page.text), page.text
        parser = _Assets()
        parser.feed(page.text)
        assert len(parser.urls) == 3, parser.urls  # Swagger UI's script and styles, and the icon
        for url in parser.urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"].startswith(EXPECTED_TYPES[suffix]), (url, asset.headers)
            assert len(asset.content) > 0
        # The document the page starts from is same-origin too.
        assert "url: '/api-docs/openapi.json'" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "https:" not in csp


async def test_docs_script_is_swagger_ui_5_which_reads_openapi_3_1() -> None:
    # Swagger UI 4 shows "Unable to render this definition" for the document's `openapi: 3.1.0`.
    settings = make_settings(services={"auth": f"http://127.0.0.1:{free_port()}"})
    async with gateway(settings) as client:
        script = await client.get("/api-docs/assets/swagger-ui-bundle.js")
        document = await client.get("/api-docs/openapi.json")
    assert document.json()["openapi"].startswith("3.1")
    assert script.status_code == 200
    assert re.search(rb'"5\.\d+\.\d+"', script.content)

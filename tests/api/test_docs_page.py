"""/docs: Swagger UI from the service itself (no CDN), with the web pages' headers (issue 11
item 3, issue 12 item 8)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.web.endpoints import SECURITY_HEADERS


def _assert_security_headers(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


def test_docs_page_references_no_other_host_and_has_the_web_headers(client: TestClient):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    _assert_security_headers(response)
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    html = response.text
    assert not re.search(r"(src|href)=\"(https?:)?//", html), html
    assert "cdn" not in html.lower()
    assert "<script>" not in html  # no inline script: the strict policy would block it
    refs = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
    assert "/docs/static/swagger-ui-bundle.js" in refs
    assert "/docs/static/swagger-ui.css" in refs
    assert "/docs/init.js" in refs
    for ref in refs:  # every asset the page names is served, with the same headers
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 0, ref
        _assert_security_headers(asset)


def test_docs_assets_are_the_real_swagger_ui(client: TestClient):
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 500_000
    css = client.get("/docs/static/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    assert ".swagger-ui" in css.text
    init = client.get("/docs/init.js")
    assert init.headers["content-type"].startswith("text/javascript")
    assert '"url": "/openapi.json"' in init.text
    assert '"validatorUrl": null' in init.text  # no call to the online validator
    assert "http" not in init.text


def test_docs_under_a_root_path_points_at_the_prefixed_assets(client: TestClient):
    behind_proxy = TestClient(client.app, root_path="/srnet")
    response = behind_proxy.get("/docs")
    assert 'src="/srnet/docs/static/swagger-ui-bundle.js"' in response.text
    assert 'src="/srnet/docs/init.js"' in response.text
    init = behind_proxy.get("/docs/init.js")
    assert '"url": "/srnet/openapi.json"' in init.text


def test_redoc_from_a_cdn_is_not_offered(client: TestClient):
    assert client.get("/redoc").status_code == 404

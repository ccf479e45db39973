"""The OpenAPI page (`/docs`): Swagger UI served by the service itself, no CDN.

Swagger UI's files (`swagger-ui-bundle.js`, `swagger-ui.css`, swagger-ui-dist under its Apache-2.0
licence) come from the `fastapi-offline` wheel, a dependency, and are mounted at
`/docs/static/`. The page starts Swagger UI from `/docs/init.js` instead of an inline script, so
it carries the same strict Content-Security-Policy and headers as the web pages (`/web/`): every
script, style and connection from this service, nothing inline, no framing. The online spec
validator badge is off (it would call another host). `/redoc` is not offered: ReDoc injects
inline styles, which that policy forbids.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.web.endpoints import SECURITY_HEADERS

DOCS_URL = "/docs"
DOCS_STATIC_PREFIX = "/docs/static"
SWAGGER_UI_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


class DocsStaticFiles(StaticFiles):
    """Swagger UI's files, with the web pages' headers (CSP included)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _page(root: str, title: str) -> str:
    static = escape(root + DOCS_STATIC_PREFIX)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{static}/swagger-ui.css">
<link rel="icon" type="image/png" href="{static}/favicon.png">
</head>
<body>
<p class="srnet-web-link"><a href="{escape(root)}/web/">← SRNet web pages</a> (jobs, studies,
runs; sign in with your API key)</p>
<div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{escape(root + DOCS_URL)}/init.js"></script>
</body>
</html>
"""


def _init_script(openapi_url: str) -> str:
    options = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        "showCommonExtensions": True,
        "validatorUrl": None,  # no call to the online validator
        "persistAuthorization": False,
    }
    return (
        "(function () {\n"
        f"  var options = {json.dumps(options)};\n"
        "  options.presets = [SwaggerUIBundle.presets.apis,\n"
        "                     SwaggerUIBundle.SwaggerUIStandalonePreset];\n"
        "  options.plugins = [SwaggerUIBundle.plugins.DownloadUrl];\n"
        "  window.ui = SwaggerUIBundle(options);\n"
        "})();\n"
    )


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, `/docs/init.js` and `/docs/static/...` (the app is made with docs_url=None
    and redoc_url=None)."""
    title = f"{app.title} - API"

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui_page(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(_root(request), title), headers=SECURITY_HEADERS)

    @app.get(DOCS_URL + "/init.js", include_in_schema=False)
    def swagger_ui_init(request: Request) -> Response:
        root = _root(request)
        script = _init_script(root + (app.openapi_url or "/openapi.json"))
        return Response(script, media_type="text/javascript", headers=SECURITY_HEADERS)

    app.mount(DOCS_STATIC_PREFIX, DocsStaticFiles(directory=SWAGGER_UI_DIR), name="docs_static")

"""Routes of the web pages (`/web/...`) and their static files (`/web/static/...`).

The pages are public shells; every piece of data comes from the JSON API, called by the page's
script with the API key from sessionStorage. Responses carry a strict Content-Security-Policy:
scripts, styles and connections only from this service, no inline script, no framing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.deps import SessionDep, SettingsDep
from api.web.form import form_description
from api.web.pages import PAGES, STATIC_PREFIX, render_page
from api.web.presets import presets_description
from persistence.repositories import JobRepository

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _page(request: Request, page_id: str) -> HTMLResponse:
    html = render_page(PAGES[page_id], request.scope.get("root_path", ""))
    return HTMLResponse(html, headers=SECURITY_HEADERS)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/")
def service_root(request: Request) -> RedirectResponse:
    """A browser pointed at the service lands on the web pages (the API's routes are listed
    at /docs, linked from every page)."""
    return RedirectResponse(f"{_root(request)}/web/", status_code=307)


@router.get("/web")
@router.get("/web/")
def web_home(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{_root(request)}/web/jobs", status_code=307)


@router.get("/web/submit", response_class=HTMLResponse)
def submit_page(request: Request) -> HTMLResponse:
    return _page(request, "submit")


@router.get("/web/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs")


@router.get("/web/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    # The id is read by the page's script from the URL; it never enters the markup.
    del job_id
    return _page(request, "job")


@router.get("/web/studies", response_class=HTMLResponse)
def studies_page(request: Request) -> HTMLResponse:
    return _page(request, "studies")


@router.get("/web/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: str) -> HTMLResponse:
    del study_id  # read by the page's script from the URL, like the job page
    return _page(request, "study")


@router.get("/web/runs", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    return _page(request, "runs")


@router.get("/web/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    return _page(request, "compare")


@router.get("/web/form.json")
def form_json(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """The submit form: sections and fields (from the spec's JSON schema) and presets with
    their size and estimate. Public, like /openapi.json: it describes the spec; the estimate
    uses the median training speed of finished jobs per queue and model, no one's job."""

    found: dict[tuple[str, str], list[float]] = {}  # presets share queues and models

    def speeds(queue: str, model: str) -> list[float]:
        if (queue, model) not in found:
            found[queue, model] = JobRepository(session).training_speeds(queue, model)
        return found[queue, model]

    presets = presets_description(speeds, settings.default_queue)
    body: dict[str, Any] = {**form_description(), "presets": presets}
    return JSONResponse(body, headers={"Cache-Control": "no-cache"})


class WebStaticFiles(StaticFiles):
    """Static files with the same protective headers as the pages, revalidated on each load
    (ETag) so an upgraded service never runs with stale scripts."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        for name in ("X-Content-Type-Options", "Referrer-Policy", "Cache-Control"):
            response.headers[name] = SECURITY_HEADERS[name]
        return response


def install_web(app: FastAPI) -> None:
    """Add the pages and mount their static files (called by `api.main.create_app`)."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, WebStaticFiles(directory=STATIC_DIR), name="web_static")

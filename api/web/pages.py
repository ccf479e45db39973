"""The HTML shells of the web pages. They hold no data: the page's script fetches it with the
API key from sessionStorage and renders it as text nodes, so nothing a user or a job wrote is
ever parsed as HTML. Only fixed strings and the app's root path go into this markup."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

STATIC_PREFIX = "/web/static"


@dataclass(frozen=True)
class Page:
    id: str  # also the name of its script, static/js/<id>.js
    title: str
    heading: str
    intro: str


PAGES: dict[str, Page] = {
    "submit": Page(
        "submit",
        "Submit a job",
        "Submit a search job",
        "Every field of the job spec, with its default. Leave a field empty to keep the "
        "default, or start from one of the paper's settings.",
    ),
    "jobs": Page("jobs", "Jobs", "Your jobs", "Status, stage and progress of your jobs."),
    "job": Page("job", "Job", "Job", ""),
    "studies": Page(
        "studies",
        "Studies",
        "Your studies",
        "A study is one submission that expands a base job spec over axes into a grid of "
        "ordinary jobs, with the dense model of every loss as reference, and one results table "
        "over their seeds.",
    ),
    "study": Page("study", "Study", "Study", ""),
    "runs": Page(
        "runs",
        "Runs",
        "Runs across your jobs and studies",
        "One row per job, stage and sparsity: the selected point of each seed, averaged. Filter, "
        "sort, export.",
    ),
    "compare": Page(
        "compare",
        "Compare jobs",
        "Compare jobs: in-distribution vs out-of-distribution",
        "The selected point of each job's masks, ID accuracy against OOD accuracy.",
    ),
}

NAV = (
    ("submit", "/web/submit", "Submit"),
    ("jobs", "/web/jobs", "Jobs"),
    ("studies", "/web/studies", "Studies"),
    ("runs", "/web/runs", "Runs"),
    ("compare", "/web/compare", "Compare"),
)

# A detail page marks its list in the navigation.
CURRENT = {"job": "jobs", "study": "studies"}


def render_page(page: Page, root_path: str = "") -> str:
    root = escape(root_path.rstrip("/"), quote=True)
    static = f"{root}{STATIC_PREFIX}"
    nav = (
        "".join(
            f'<a href="{root}{href}"'
            + (' aria-current="page"' if key == page.id or CURRENT.get(page.id) == key else "")
            + f">{escape(label)}</a>"
            for key, href, label in NAV
        )
        + f'<a class="api-docs" href="{root}/docs">API docs</a>'
    )  # the OpenAPI page (api.docs)
    intro = f'<p class="intro">{escape(page.intro)}</p>' if page.intro else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="srnet-root" content="{root}">
<title>{escape(page.title)} · SRNet</title>
<link rel="stylesheet" href="{static}/srnet.css">
<link rel="icon" href="{static}/favicon.svg" type="image/svg+xml">
<script type="module" src="{static}/js/{page.id}.js"></script>
</head>
<body data-page="{page.id}">
<a class="skip-link" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="{root}/web/jobs">SRNet</a>
<nav class="pages" aria-label="Pages">{nav}</nav>
<section id="key-bar" class="key-bar" aria-label="API key"></section>
</header>
<main id="main" tabindex="-1">
<h1 id="page-heading">{escape(page.heading)}</h1>
{intro}
<noscript><p class="notice error">These pages need JavaScript (served by this service; nothing
is loaded from elsewhere).</p></noscript>
<div id="app" aria-live="polite"></div>
</main>
<footer class="bottom">SRNet · sparse and robust subnetworks · the API key stays in this browser
tab (sessionStorage) and is sent only as a request header.</footer>
</body>
</html>
"""

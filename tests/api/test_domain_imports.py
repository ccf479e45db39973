"""The API's domains (jobs, studies, runs, artifacts) sit below the web pages: the web form
reads the jobs' examples, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("jobs", "studies", "runs", "artifacts")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_domain_imports_the_web_pages():
    files = [p for d in DOMAINS for p in sorted((ROOT / "api" / d).glob("*.py"))]
    assert len(files) >= 12
    upward = {
        str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n.startswith("api.web"))
        for p in files
    }
    assert {k: v for k, v in upward.items() if v} == {}


def test_the_web_form_presets_are_the_job_examples():
    from api.jobs.examples import PRESETS, openapi_examples
    from api.studies.examples import study_openapi_examples
    from api.web.presets import PRESETS as FORM_PRESETS
    from api.web.presets import presets_description

    assert FORM_PRESETS is PRESETS
    described = presets_description(lambda queue, model: [], "gpu")
    assert [p["id"] for p in described] == list(openapi_examples())
    base = study_openapi_examples()["losses"]["value"]["base"]
    assert base["pruning"] == PRESETS[0].spec["pruning"]

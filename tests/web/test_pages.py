"""The web pages without a browser: what the server sends (shells, headers, static files, the
form description, the presets)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.jobs.schemas import JobCreate
from api.web.endpoints import STATIC_DIR
from api.web.form import form_fields
from api.web.presets import PRESETS
from srcore.jobspec.task_registry import resolve_task
from tests.client.live_service import LiveService

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "/web/submit",
    "/web/jobs",
    "/web/compare",
    "/web/runs",
    "/web/jobs/0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53",
    "/web/studies",
    "/web/studies/0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_shells_with_a_strict_policy(service: LiveService, path):
    response = httpx.get(service.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    # Every script and style is served by the service itself: nothing from another host.
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    detail = {"jobs": "job", "studies": "study"}
    page = detail[path.split("/")[2]] if path.count("/") == 3 else path.rsplit("/", 1)[-1]
    assert f'src="/web/static/js/{page}.js"' in html
    assert "<script>" not in html  # no inline script


def test_the_path_is_never_echoed_into_the_page(service: LiveService):
    response = httpx.get(service.url + "/web/jobs/%3Cscript%3Ealert(1)%3C%5Cscript%3E")
    assert response.status_code == 200
    assert "alert(1)" not in response.text and "%3Cscript" not in response.text


def test_web_redirects_to_the_jobs_page(service: LiveService):
    for path in ("/web", "/web/"):
        response = httpx.get(service.url + path)
        assert response.status_code == 307 and response.headers["location"] == "/web/jobs"
    root = httpx.get(service.url + "/")  # a browser pointed at the service (issue 19 item 3)
    assert root.status_code == 307 and root.headers["location"] == "/web/"


def test_static_files_are_served_with_their_types(service: LiveService):
    names = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*.*"))
    assert {"srnet.css", "js/core.js", "js/charts.js", "js/job.js"} <= set(names)
    for name in names:
        response = httpx.get(f"{service.url}/web/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"
        expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        assert response.headers["content-type"].startswith(expected[Path(name).suffix]), name
    assert httpx.get(f"{service.url}/web/static/../main.py").status_code == 404
    assert httpx.get(f"{service.url}/web/static/%2e%2e/main.py").status_code == 404


def test_static_code_loads_nothing_from_elsewhere_and_never_writes_html():
    for path in STATIC_DIR.rglob("*.js"):
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
        # Data is rendered as text nodes only.
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (path, sink)
        assert "localStorage" not in text and "document.cookie" not in text, path
    css = (STATIC_DIR / "srnet.css").read_text()
    assert "@import" not in css and "url(" not in css


def test_the_form_has_every_spec_field_with_default_and_explanation(service: LiveService):
    body = httpx.get(service.url + "/web/form.json").json()
    fields = {f["path"]: f for f in body["fields"]}
    # Every leaf of the spec, the nested ones included.
    expected = {
        "name",
        "task",
        "queue",
        "model.name_or_path",
        "debias.loss",
        "debias.bias.source",
        "debias.bias.fit",
        "debias.bias.class_weight",
        "debias.teacher.path",
        "pruning.sparsities",
        "pruning.scenario",
        "training.seeds",
        "training.precision",
        "training.tf32",
        "training.deterministic",
        "dense.stop_at_step",
        "data.ood",
        "evaluation.ood_sets",
    }
    assert expected <= set(fields)
    assert len(fields) == len(form_fields()) == 55  # + pruning.structure, export.* (issue 21)
    for path, field in fields.items():
        assert field["description"], f"{path} has no explanation"
    assert fields["pruning.sparsities"]["default"] == [0.5]  # from the parent's default
    assert fields["pruning.sparsities"]["kind"] == "number_list"
    assert fields["pruning.sparsities"]["constraints"]["item_exclusiveMaximum"] == 1.0
    assert fields["training.batch_size"] == {
        **fields["training.batch_size"],
        "default": 32,
        "kind": "integer",
        "nullable": False,
    }
    assert fields["pruning.method"]["options"] == ["mask_training", "imp", "magnitude"]
    assert fields["pruning.init"]["nullable"] and fields["pruning.init"]["kind"] == "enum"
    assert fields["data.train"]["kind"] == "json"
    assert fields["debias.bias.source"]["label"] == "bias source"
    # The fields added with bf16 and the bias-model options, with their choices and defaults.
    assert fields["training.precision"]["options"] == ["auto", "bf16", "fp32"]
    assert fields["training.precision"]["default"] == "auto"
    assert fields["debias.bias.fit"]["options"] == ["out_of_fold", "in_sample"]
    assert fields["debias.bias.fit"]["default"] == "out_of_fold"
    assert fields["debias.bias.class_weight"]["options"] == ["none", "balanced"]
    assert fields["debias.bias.class_weight"]["default"] == "none"
    assert {g["id"] for g in body["groups"]} >= {f["group"] for f in body["fields"]}


def test_help_text_speaks_to_users_and_says_what_unset_means():
    """Descriptions come from the spec's fields: no Python or JSON words leak into them, and a
    field whose default is unset says what that means (the README's default)."""
    fields = {f.path: f for f in form_fields()}
    for path, field in fields.items():
        assert not re.search(r"\b(None|null|True|False)\b", field.description), path
    assert fields["training.eval_every"].unset == "10 evaluations per stage"
    assert fields["pruning.initial_sparsity"].unset == "0.7"
    # soft: the default method's init, from the parent's default (the help says imp has none)
    assert fields["pruning.init"].default == "soft" and fields["pruning.init"].unset is None
    assert fields["training.learning_rate"].unset.startswith("5e-5, the paper's rate")
    assert fields["evaluation.ood_sets"].unset == "all of the task's"
    assert fields["training.grad_clip"].unset is None  # it has a value: 1.0
    readme = (ROOT / "README.md").read_text()
    assert "| `training.eval_every` | 10 per stage |" in readme


def test_every_spec_leaf_is_a_form_field():
    """A field added to JobSpec shows up in the form without touching the web code."""

    def leaves(model, prefix=""):
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from leaves(annotation, f"{prefix}{name}.")
            else:
                yield prefix + name

    assert set(leaves(JobCreate)) == {f.path for f in form_fields()}


@pytest.mark.parametrize("preset", PRESETS, ids=[p.id for p in PRESETS])
def test_presets_are_valid_jobs(preset):
    body = JobCreate.model_validate(preset.spec)
    resolve_task(body.spec())
    assert body.name == preset.spec["name"]


def test_presets_carry_the_papers_settings():
    by_id = {p.id: p for p in PRESETS}
    poe = JobCreate.model_validate(by_id["mnli-poe-mask"].spec)
    assert (poe.task, poe.debias.loss, poe.pruning.method) == ("mnli", "poe", "mask_training")
    assert poe.pruning.sparsities == [0.5, 0.7, 0.9]
    imp = JobCreate.model_validate(by_id["qqp-reweight-imp"].spec)
    assert (imp.task, imp.debias.loss, imp.pruning.method) == ("qqp", "reweight", "imp")
    frozen = JobCreate.model_validate(by_id["mnli-ce-frozen"].spec)
    assert (frozen.debias.loss, frozen.pruning.scenario) == ("none", "pretrained_frozen")


def test_the_web_module_imports_no_torch():
    code = (
        "import sys, api.web, api.main; print(sorted(m for m in sys.modules if m in "
        "{'torch', 'transformers', 'datasets'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""Tags, notes and the runs table from the Python client and `srnet tag | note | runs`, against
a real running API (a stand-in worker records the selected points)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from srnet.cli import main
from srnet.client import SRNetClient, ValidationFailed
from tests.client.live_service import LiveService

SPEC = {"name": "runs-poe", "debias": {"loss": "poe"}, "pruning": {"sparsities": [0.5, 0.7]}}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(service: LiveService, key: str, monkeypatch) -> str:
    monkeypatch.setenv("SRNET_URL", service.url)
    monkeypatch.setenv("SRNET_API_KEY", key)
    return key


def finished(client: SRNetClient, service: LiveService, spec: dict, shift: float = 0.0) -> str:
    job = client.submit(spec)
    service.worker(job.id).run_search(shift=shift)
    return job.id


def test_the_client_tags_notes_and_reads_the_runs_table(client, service):
    poe = finished(client, service, SPEC)
    ce = finished(client, service, {**SPEC, "name": "runs-ce", "debias": {"loss": "none"}}, 0.05)
    job = client.annotate(poe, tags=["paper"], note="the PoE run")
    assert job.tags == ("paper",) and job.note == "the PoE run"
    assert client.add_tags(poe, "poe", "paper").tags == ("paper", "poe")
    assert client.remove_tags(poe, "paper").tags == ("poe",)
    assert client.get(poe).note == "the PoE run"  # tags alone leave the note
    with pytest.raises(ValidationFailed) as refused:
        client.annotate(poe, tags=["two words"])
    assert refused.value.fields == ["tags.0"]

    rows = client.runs()
    # dense + 2 sparsities per job; newest job first
    assert [(r["job_id"], r["stage"], r["sparsity"]) for r in rows][:3] == [
        (ce, "dense", 0.0), (ce, "search", 0.5), (ce, "search", 0.7)]  # fmt: skip
    poe_half = client.runs(loss="poe", sparsity=0.5)
    assert len(poe_half) == 1 and poe_half[0]["job_id"] == poe
    assert poe_half[0]["id_metric"] == pytest.approx(0.78 + 30 / 2000)  # the selected step 30
    assert poe_half[0]["ood"]["hans"] == pytest.approx(0.62 + 30 / 4000)
    assert poe_half[0]["tags"] == ["poe"]
    assert [r["job_id"] for r in client.runs(tag="poe", stage="search")] == [poe, poe]
    by_ood = client.runs(stage="search", sparsity=0.5, sort="-ood.hans")
    assert [r["job_id"] for r in by_ood] == [ce, poe]  # the shift moved CE's OOD up
    # Rows are flat enough for pandas: every value a scalar, a list or a small dict.
    assert all(isinstance(v, str | int | float | bool | list | dict | None)
               for r in rows for v in r.values())  # fmt: skip
    text = client.runs_csv(loss="poe", sort=["sparsity"])
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [line["stage"] for line in lines] == ["search", "search"]  # the dense model is CE
    assert "ood.hans" in lines[0] and lines[1]["tags"] == "poe"


def test_srnet_tag_note_and_runs(env, client, service, capsys):
    job = finished(client, service, SPEC)
    code, out, err = run(capsys, "tag", job[:8], "baseline", "poe")
    assert code == 0, err
    assert out.strip() == f"{job} tags: baseline poe"
    code, out, _ = run(capsys, "tag", job, "--remove", "baseline")
    assert code == 0 and out.strip().endswith("tags: poe")
    code, _, err = run(capsys, "tag", job, "bad tag")
    assert code == 2 and "tags.1: a tag is one word" in err
    code, _, err = run(capsys, "tag", job)
    assert code == 2 and "at least one TAG" in err
    code, out, _ = run(capsys, "note", job, "looks right")
    assert code == 0 and out.strip().endswith("note: looks right")
    code, out, _ = run(capsys, "status", job)
    assert "tags      poe" in out and "note      looks right" in out

    code, out, err = run(capsys, "runs")
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[:11] == ["JOB", "NAME", "TASK", "LOSS", "METHOD", "SCENARIO", "STRUCTURE",
                           "STAGE", "SPARSITY", "N", "ID"] and "HANS" in header  # fmt: skip
    assert "50%" in out and "poe" in out and "unstructured" in out
    code, out, _ = run(capsys, "runs", "--json", "--sparsity", "70%")
    rows = json.loads(out)
    assert [r["sparsity"] for r in rows] == [0.7] and rows[0]["tags"] == ["poe"]
    code, out, _ = run(capsys, "runs", "--csv", "--sparsity", "0")
    lines = list(csv.DictReader(io.StringIO(out)))
    assert [line["stage"] for line in lines] == ["dense"]
    code, out, _ = run(capsys, "runs", "--tag", "nobody")
    assert code == 0 and "no runs yet" in out
    code, _, err = run(capsys, "runs", "--sort", "colour")
    assert code == 2 and "sort" in err
    structured = finished(client, service, {**SPEC, "name": "runs-ffn",
                                            "pruning": {"sparsities": [0.5],
                                                        "structure": "ffn_neurons"}})  # fmt: skip
    code, out, err = run(capsys, "runs", "--json", "--structure", "ffn_neurons")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["job_id"] for r in rows} == {structured}
    assert {r["structure"] for r in rows} == {"ffn_neurons"}
    code, out, _ = run(capsys, "runs", "--structure", "unstructured", "--stage", "search")
    assert code == 0 and "ffn_neurons" not in out and "unstructured" in out
    with pytest.raises(SystemExit) as refused:
        main(["runs", "--structure", "rows"])
    assert refused.value.code == 2 and "argument --structure" in capsys.readouterr().err

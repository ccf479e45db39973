"""Studies through the Python client and `srnet study submit | list | status | table | cancel`
against a real running API; the stand-in worker records the children's selected points."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from srcore.jobspec.study_table import read_table_csv
from srnet.cli import main
from srnet.client import Conflict, NotFound, SRNetClient, Study, ValidationFailed
from tests.client.live_service import LiveService, metric_payload

STUDY = {
    "name": "client-study",
    "base": {"pruning": {"sparsities": [0.5]}, "training": {"seeds": [1, 2]}},
    "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
}


def finish_with_points(service: LiveService, study: Study) -> None:
    """Every child runs: dense model and a 50% subnetwork per seed, selected, then succeeds."""
    for child in study.children:
        worker = service.worker(child.job_id)
        worker.claim()
        for seed in (1, 2):
            shift = 0.01 * seed + (0.05 if "poe" in child.key else 0.0)
            worker.metric("dense", 10, metric_payload(0.80 + shift, 0.55), seed=seed,
                          sparsity=0.0, selected=True)  # fmt: skip
            worker.metric("search", 20, metric_payload(0.75 + shift, 0.60 + shift), seed=seed,
                          sparsity=0.5, selected=True)  # fmt: skip
        worker.finish()


def test_the_client_submits_reads_tables_plots_and_cancels(client: SRNetClient, service):
    study = client.submit_study(STUDY)
    assert study.status == "queued" and study.jobs == 4 and study.counts["queued"] == 4
    assert [c.key for c in study.children][:2] == ["debias.loss=none", "debias.loss=poe"]
    assert client.get(study.children[0].job_id).name == "client-study · loss none"
    assert [s.id for s in client.list_studies().studies] == [study.id]
    assert client.study_table(study.id) == []

    finish_with_points(service, study)
    done = client.get_study(study.id)
    assert done.status == "succeeded" and done.is_finished and done.counts["succeeded"] == 4
    records = client.study_table(study.id)
    by = {(r["row"], r["sparsity"], r["metric"]): r for r in records}
    assert by[("loss poe", 0.5, "dev.accuracy")]["mean"] == pytest.approx(0.75 + 0.05 + 0.015)
    assert by[("loss poe", 0.5, "dev.accuracy")]["n"] == 2
    assert by[("dense CE", 0.0, "hans.accuracy")]["mean"] == pytest.approx(0.55)
    assert len(done.table) == len(records)
    csv_records = read_table_csv(client.study_table_csv(study.id))
    assert {(r["row"], r["metric"]) for r in csv_records} == {(r["row"], r["metric"]) for r in
                                                              records}  # fmt: skip
    assert client.study_plot(study.id).startswith(b"\x89PNG")
    with pytest.raises(Conflict):
        client.cancel_study(study.id)

    second = client.submit_study(STUDY, idempotency_key="again")
    assert client.submit_study(STUDY, idempotency_key="again").id == second.id
    cancelled = client.cancel_study(second.id)
    assert cancelled.status == "cancelled" and cancelled.counts["cancelled"] == 4


def test_the_client_raises_typed_errors(client: SRNetClient, service):
    bad = {**STUDY, "axes": [{"path": "debias.lossy", "values": ["poe"]}]}
    with pytest.raises(ValidationFailed) as raised:
        client.submit_study(bad)
    assert raised.value.fields == ["axes.0.path"]
    assert "debias.loss" in raised.value.errors[0].message
    with pytest.raises(NotFound):
        client.get_study(str(uuid.uuid4()))
    study = client.submit_study(STUDY)
    with SRNetClient(service.url, service.key_for("someone-else")) as other:
        with pytest.raises(NotFound):
            other.get_study(study.id)
        with pytest.raises(NotFound):
            other.study_table(study.id)


@pytest.fixture
def env(service: LiveService, key: str, monkeypatch) -> str:
    monkeypatch.setenv("SRNET_URL", service.url)
    monkeypatch.setenv("SRNET_API_KEY", key)
    return key


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_study_commands(env, service, tmp_path: Path, capsys):
    path = tmp_path / "study.json"
    path.write_text(json.dumps(STUDY))
    code, out, err = run(capsys, "study", "submit", str(path))
    assert code == 0, err
    study_id = out.splitlines()[0]
    assert uuid.UUID(study_id)
    assert "4 jobs (4 queued)" in out and "loss poe" in out and "reference" in out

    code, out, _ = run(capsys, "study", "list")
    assert code == 0 and study_id in out and "client-study" in out and "0/4" in out
    code, out, _ = run(capsys, "study", "status", study_id)
    assert code == 0 and "status  queued" in out and "dense CE" in out

    with SRNetClient(service.url, env) as client:
        finish_with_points(service, client.get_study(study_id))
    code, out, _ = run(capsys, "study", "status", study_id)
    assert "status  succeeded" in out and "4 succeeded" in out
    code, out, _ = run(capsys, "study", "table", study_id)
    assert code == 0
    assert "| setting | sparsity | dev | HANS |" in out.splitlines()[0]
    poe = next(line for line in out.splitlines() if line.startswith("| loss poe | 50%"))
    assert "81.5 ± 0.7 (2)" in poe
    code, out, _ = run(capsys, "study", "table", study_id, "--csv")
    assert code == 0 and out.startswith("row,role,setting,sparsity,metric,mean,sd,n,collapsed")
    code, out, _ = run(capsys, "study", "table", study_id, "--json")
    assert code == 0 and {r["row"] for r in json.loads(out)} >= {"loss poe", "dense CE"}
    code, out, err = run(capsys, "study", "compare", study_id, "loss poe", "loss none")
    assert code == 0, err
    dev = next(line for line in out.splitlines() if "| dev.accuracy |" in line)
    assert dev.startswith("| loss poe @ 50% | loss none @ 50% |")
    assert "| 2 | +5.00 | [+5.00, +5.00] | 1 2 |" in dev  # PoE children are +0.05 every seed
    code, out, _ = run(capsys, "study", "compare", study_id, "loss poe", "dense CE", "--json")
    assert code == 0 and {d["sparsity_b"] for d in json.loads(out)} == {0.0}
    code, _, err = run(capsys, "study", "compare", study_id, "loss poe", "nope")
    assert code == 2 and "no row `nope`" in err
    code, _, err = run(capsys, "study", "cancel", study_id)
    assert code == 1 and "finished" in err  # nothing left to cancel


def test_study_command_exit_codes(env, tmp_path: Path, capsys, monkeypatch):
    bad = tmp_path / "bad.json"
    grid = [{"path": "training.learning_rate", "values": [1e-5] * 9},
            {"path": "training.epochs", "values": list(range(1, 9))}]  # fmt: skip
    bad.write_text(json.dumps({**STUDY, "axes": grid}))
    code, _, err = run(capsys, "study", "submit", str(bad))
    assert code == 2 and "axes: the study has 72 jobs; at most 64 allowed" in err
    code, _, err = run(capsys, "study", "submit", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "study", "status", str(uuid.uuid4()))
    assert code == 2 and "no study" in err and "srnet study list" in err
    path = tmp_path / "study.json"
    path.write_text(json.dumps(STUDY))
    code, out, _ = run(capsys, "study", "submit", str(path))
    study_id = out.splitlines()[0]
    code, out, _ = run(capsys, "study", "cancel", study_id)
    assert code == 0 and out.startswith(f"{study_id} cancelled (4 cancelled)")
    monkeypatch.setenv("SRNET_URL", "http://127.0.0.1:9")
    code, _, err = run(capsys, "study", "list")
    assert code == 4

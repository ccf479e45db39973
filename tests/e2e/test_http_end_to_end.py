"""End to end over HTTP, the way the README's first command runs the service: `srnet serve` on
its embedded defaults (SQLite, kombu's SQLAlchemy broker on SQLite, a local artifact folder; no
service at all) starts the API, a Celery worker process and the reconciler. A client submits a
tiny real job, polls it, reads its metrics, downloads the pruned checkpoint (sha256 = ETag,
Range honoured), loads it with plain transformers and counts its zeros; Ctrl-C stops it all."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.tiny_model_dir import save_tiny_roberta
from tests.worker.processes import TEST_WORKER_ENV, one_core, wait_for
from tests.worker.tiny_job import (
    MNLI_LABELS,
    extract_checkpoint,
    pruned_weights,
    save_tiny_model,
    tiny_job_spec,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(log: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", log)}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def served(tmp_path: Path):
    """`srnet serve` in an empty folder, configured only by a bootstrap key (and fast
    heartbeats); yields (base URL, API key, process, log path)."""
    home = tmp_path / "home"
    home.mkdir()
    key = "srn_" + secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "BROKER_URL", "ARTIFACT_STORE", "WORK_DIR")
           and not k.startswith(("SRNET_", "WORKER_", "BROKER_"))}  # fmt: skip
    env.update(TEST_WORKER_ENV)
    env["SRNET_BOOTSTRAP_API_KEY"] = key
    env["SRNET_HOME"] = str(home / "srnet-home")  # every default file lands under it
    env["SRNET_DATA_ROOTS"] = json.dumps([str(tmp_path)])  # the tiny model's folder may be named
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "srnet", "serve", "--port", str(port)],
            cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=one_core,
        )  # fmt: skip
    try:
        wait_for(lambda: "SRNet is serving" in log_path.read_text() or process.poll() is not None,
                 120, "srnet serve to come up")  # fmt: skip
        assert process.poll() is None, log_path.read_text()[-4000:]
        yield f"http://127.0.0.1:{port}", key, process, log_path, home
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in child_pids(log_path.read_text()).values():
            if not gone(pid):
                os.killpg(pid, signal.SIGKILL)


def wait_finished(
    client: httpx.Client, job_id: str, log_path: Path, timeout_s: float = 240
) -> dict:
    def finished():
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    try:
        job = wait_for(finished, timeout_s, "the job to finish", interval=0.3)
    except AssertionError:
        raise AssertionError(log_path.read_text()[-5000:]) from None
    assert job["status"] == "succeeded", (job["error"], log_path.read_text()[-5000:])
    return job


def test_every_structure_end_to_end_over_http_on_bert_and_roberta(served, tmp_path):
    """pruning.structure through the whole service: submitted over HTTP, run by the real
    worker, the checkpoint downloaded and loaded with plain transformers. FFN structures come
    back physically smaller (intermediate_size halved, fewer parameters); heads are zeroed in
    the checkpoint; unstructured keeps the shapes and zeroes half the weights."""
    from transformers import AutoModelForSequenceClassification

    base_url, key, _, log_path, _ = served
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                          timeout=30)  # fmt: skip
    bert = save_tiny_model(tmp_path / "tiny-bert")
    roberta = save_tiny_roberta(tmp_path / "tiny-roberta")
    cases = [("ffn_neurons", bert), ("ffn_neurons+heads", roberta), ("unstructured", roberta)]
    submitted = []
    for structure, model_dir in cases:
        spec = tiny_job_spec(model_dir)
        spec["pruning"]["structure"] = structure
        spec["training"]["max_length"] = 48  # inside the tiny RoBERTa's 63 positions
        spec["name"] = f"{structure}-{model_dir.name}"
        created = client.post("/jobs", json=spec)
        assert created.status_code == 201, created.text
        assert created.json()["spec"]["pruning"]["structure"] == structure
        submitted.append((structure, model_dir, created.json()["id"]))
    for structure, model_dir, job_id in submitted:
        wait_finished(client, job_id, log_path)
        artifacts = client.get(f"/jobs/{job_id}/artifacts").json()["data"]
        (checkpoint,) = [a for a in artifacts if a["kind"] == "checkpoint"]
        archive = tmp_path / f"{job_id}.tar"
        archive.write_bytes(client.get(checkpoint["download_url"]).content)
        folder = extract_checkpoint(archive, tmp_path / job_id)
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        base = AutoModelForSequenceClassification.from_pretrained(model_dir)
        assert type(model) is type(base), structure
        n_model = sum(p.numel() for p in model.parameters())
        n_base = sum(p.numel() for p in base.parameters())
        card = (folder / "README.md").read_text()
        if structure == "unstructured":
            assert model.config.intermediate_size == base.config.intermediate_size
            assert n_model == n_base
            zeros, total, _ = pruned_weights(folder)
            assert zeros / total == pytest.approx(0.5, abs=1e-3)
            assert "no speedup" in card.lower()
            continue
        assert model.config.intermediate_size == base.config.intermediate_size // 2, structure
        assert n_model < n_base and "physically smaller" in card
        if structure == "ffn_neurons+heads":  # one of the two heads of each layer is zeroed
            for layer in model.roberta.encoder.layer:
                out = layer.attention.output.dense.weight.detach()
                width = out.shape[1] // 2
                dead = [bool((out[:, h * width : (h + 1) * width] == 0).all()) for h in (0, 1)]
                assert sorted(dead) == [False, True]


def test_submit_poll_download_load_and_stop(served, tmp_path):
    base_url, key, process, log_path, home = served
    model_dir = save_tiny_model(tmp_path / "tiny-bert")
    spec = tiny_job_spec(model_dir)
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                          timeout=30)  # fmt: skip

    assert client.get("/healthz").json()["checks"] == {"broker": "ok", "database": "ok"}
    created = client.post("/jobs", json=spec)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    job = wait_finished(client, job_id, log_path, timeout_s=180)
    assert job["attempt"] == 1 and job["finished_at"] is not None

    events = client.get(f"/jobs/{job_id}/events").json()
    assert [e["status"] for e in events if e["kind"] == "status"] == ["running", "succeeded"]

    metrics = client.get(f"/jobs/{job_id}/metrics").json()
    curves = {(c["stage"], c["seed"], c["sparsity"]): c for c in metrics["curves"]}
    search = curves[("search", 1, 0.5)]
    assert [p["step"] for p in search["points"]] == [2, 4, 6, 8]
    assert search["selected"] is not None and search["selected"]["payload"]["sparsity"] == 0.5

    listing = client.get(f"/jobs/{job_id}/artifacts").json()
    by_kind = {a["kind"]: a for a in listing["data"]}
    assert listing["count"] == 4 and set(by_kind) == {"mask", "checkpoint", "report", "plot"}
    checkpoint = by_kind["checkpoint"]

    download = client.get(checkpoint["download_url"])
    assert download.status_code == 200
    body = download.content
    assert download.headers["etag"].strip('"') == checkpoint["sha256"]
    assert hashlib.sha256(body).hexdigest() == checkpoint["sha256"]
    assert len(body) == checkpoint["size"]
    part = client.get(checkpoint["download_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == body[:100]

    report = json.loads(client.get(by_kind["report"]["download_url"]).content)
    reported = report["results"][0]["sparsity_report"]
    assert search["selected"]["step"] == report["results"][0]["selected_step"]

    archive = tmp_path / checkpoint["name"]
    archive.write_bytes(body)
    zeros, total, id2label = pruned_weights(extract_checkpoint(archive, tmp_path / "model"))
    assert zeros == reported["pruned_weights"] and total == reported["masked_weights"]
    assert zeros / total == pytest.approx(checkpoint["sparsity"], abs=1e-3)
    assert id2label == {str(i): label for i, label in enumerate(MNLI_LABELS)}

    # The embedded defaults were used: everything lives under SRNET_HOME, and serve said so.
    var = home / "srnet-home"
    assert f"database sqlite:///{var / 'srnet.db'}" in log_path.read_text()
    assert (var / "srnet.db").is_file() and (var / "broker.db").is_file()
    assert any((var / "artifacts").rglob("*.tar"))

    # Ctrl-C: the API, the worker and the reconciler all stop, and serve exits 0.
    children = child_pids(log_path.read_text())
    assert set(children) == {"api", "worker"}
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 0, log_path.read_text()[-3000:]
    wait_for(lambda: all(gone(pid) for pid in children.values()), 10, "the children to exit")
    assert time.monotonic() - started < 60
    assert "srnet serve: stopped" in log_path.read_text()

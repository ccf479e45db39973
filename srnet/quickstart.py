"""The client side of `./scripts/quickstart`: plain HTTP with httpx, as any lab script would do.

Submits a spec, follows the job, prints what the search found (read from the job's resolved
spec: its task, its losses, its OOD sets), downloads the checkpoint (sha256 checked), loads it
with plain transformers and prints a prediction.

    python -m srnet.quickstart URL SPEC.json   (the key in SRNET_QUICKSTART_KEY)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx

LOSS_NAMES = {
    "none": "cross-entropy",
    "poe": "product of experts",
    "reweight": "reweighting",
    "conf_reg": "confidence regularisation",
}
# Metric keys of an evaluated set that are not an evaluated set (srcore's flat payload).
NOT_A_SET = {"selection", "sparsity", "train_loss", "movement", "extras"}
ID_DEV = "dev"


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, int | float) else "–"


def _loss_name(loss: str | None) -> str:
    return LOSS_NAMES.get(loss or "none", loss or "none")


def _sets(points: list[dict[str, Any]]) -> list[str]:
    """The OOD sets evaluated (every dict in a payload but the ID dev set), in first-seen order."""
    names: list[str] = []
    for point in points:
        for name, value in point["payload"].items():
            is_set = name not in NOT_A_SET and name != ID_DEV and isinstance(value, dict)
            if is_set and name not in names:
                names.append(name)
    return names


def _row_name(point: dict[str, Any], spec: dict[str, Any]) -> str:
    if point["stage"] == "dense":
        return f"dense fine-tune ({_loss_name(spec.get('dense', {}).get('loss'))})"
    if point["stage"] == "teacher":
        return "conf_reg teacher (cross-entropy)"
    loss = _loss_name(spec.get("debias", {}).get("loss"))
    sparsity = point.get("sparsity")
    size = f"{sparsity:.0%} subnetwork" if isinstance(sparsity, int | float) else point["stage"]
    return f"{size}, {loss}"


def summary_lines(job: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """The table the quick start prints: one row per selected point (dense start, each
    subnetwork), the ID dev metric and each OOD set's, HANS split into entailed and
    non-entailed, a collapsed model flagged. Everything named from the job's resolved spec."""
    spec = job["spec"]
    points = metrics["selected"]
    task = str(spec.get("task") or "task")
    ood = _sets(points)
    columns = [(f"{task.upper()} dev", ID_DEV, "accuracy")]
    for name in ood:
        columns.append((name.upper() if len(name) <= 5 else name, name, "accuracy"))
        if any("non_entailed" in p["payload"].get(name, {}) for p in points):
            columns += [("entailed", name, "entailed"), ("non-entailed", name, "non_entailed")]
    rows = [(_row_name(p, spec), p) for p in points]
    width = max([len("model"), *(len(name) for name, _ in rows)]) + 2
    titles = "".join(f" {title:>{len(title) + 1}}" for title, _, _ in columns)
    header = f"   {'model':<{width}}{titles}"
    lines = [header]
    for name, point in rows:
        payload = point["payload"]
        cells = "".join(
            f" {_pct(payload.get(key, {}).get(metric)):>{len(title) + 1}}"
            for title, key, metric in columns
        )
        collapsed = [key for key in [ID_DEV, *ood] if payload.get(key, {}).get("collapsed")]
        flag = f"  (collapsed on {', '.join(collapsed)}: one class)" if collapsed else ""
        lines.append(f"   {name:<{width}}{cells}{flag}")
    return lines


def main(url: str, spec_path: str, key: str) -> int:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    spec = json.loads(Path(spec_path).read_text())
    response = client.post("/jobs", json=spec)
    if response.status_code != 201:
        print(f"the service refused the job ({response.status_code}): {response.text}",
              file=sys.stderr)  # fmt: skip
        return 1
    job = response.json()
    print(f"== job {job['id']} submitted ({spec.get('name') or spec_path}); following it")
    last = None
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(2)
        job = client.get(f"/jobs/{job['id']}").json()
        progress = job["progress"]
        line = f"   {job['status']:<10} {job['stage'] or '':<8}"
        if progress["total"]:
            line += f" step {progress['step']}/{progress['total']}"
        if job["eta_s"]:
            line += f", about {job['eta_s']:.0f} s left in this stage"
        if line != last:
            print(line, flush=True)
            last = line
    if job["status"] != "succeeded":
        print(f"== the job {job['status']}: {job['error']}", file=sys.stderr)
        return 1

    metrics = client.get(f"/jobs/{job['id']}/metrics").json()
    print("== what the search found (selected on ID dev only; OOD sets never select)")
    for line in summary_lines(job, metrics):
        print(line)

    artifacts = client.get(f"/jobs/{job['id']}/artifacts").json()["data"]
    checkpoint = next((a for a in artifacts if a["kind"] == "checkpoint"), None)
    if checkpoint is None:
        print("== the job exported no checkpoint (its spec asks for none)")
        return 0
    target = Path("var/quickstart") / job["id"]
    target.mkdir(parents=True, exist_ok=True)
    archive = target / checkpoint["name"]
    digest = hashlib.sha256()
    with client.stream("GET", checkpoint["download_url"]) as download, open(archive, "wb") as out:
        download.raise_for_status()
        for chunk in download.iter_bytes():
            out.write(chunk)
            digest.update(chunk)
    if digest.hexdigest() != checkpoint["sha256"]:
        print("== the download does not match its sha256", file=sys.stderr)
        return 1
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    model_dir = target / archive.name.removesuffix(".tar")
    print(f"== checkpoint: {checkpoint['size'] / 1e6:.1f} MB, sha256 ok, unpacked in {model_dir}")
    _predict(model_dir)
    return 0


def _predict(model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = [p for n, p in model.named_parameters()
               if n.endswith("weight") and p.ndim == 2 and ".encoder." in n]  # fmt: skip
    zeros = sum(int((p == 0).sum()) for p in encoder)
    total = sum(p.numel() for p in encoder)
    print(f"== loaded with plain transformers: {zeros / total:.1%} of the encoder's weight "
          f"matrices are zero; labels {model.config.id2label}")  # fmt: skip
    first, second = "The doctor saw the lawyer.", "The lawyer saw the doctor."
    with torch.no_grad():
        logits = model(**tokenizer(first, second, return_tensors="pt")).logits
    print(f"== '{first}' / '{second}' -> {model.config.id2label[int(logits.argmax())]}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m srnet.quickstart URL SPEC.json (key in SRNET_QUICKSTART_KEY)")
    sys.exit(main(sys.argv[1], sys.argv[2], os.environ["SRNET_QUICKSTART_KEY"]))

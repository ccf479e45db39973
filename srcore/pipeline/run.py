"""`run_search`: a whole job, bias model → dense fine-tune → search → retrain → export.

Outputs (the contract the worker uploads, see docs/architecture.md):
    OUT/metrics.json, OUT/report.png,
    OUT/masks/seed-<s>/mask-<sparsity>.safetensors,
    OUT/checkpoints/seed-<s>/sparsity-<sparsity>/  (save_pretrained directory)
    OUT/work/  resumable state (not an artifact)

Running it again on the same OUT resumes: finished units are read back, an interrupted
training continues from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srcore.export import export_checkpoint, library_versions, plot_report, write_report
from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.spec import JobSpec, spec_hash
from srcore.pipeline.inputs import JobData, load_job_data, load_model
from srcore.pipeline.search import (
    Found,
    SearchContext,
    imp,
    mask_training,
    one_shot_magnitude,
    retrain,
)
from srcore.pipeline.stages import (
    DenseModel,
    bias_stage,
    dense_stage,
    needs_dense,
    needs_teacher,
    teacher_from_file,
    teacher_probabilities,
)
from srcore.pruning import head_state_dict, model_parameter_count, save_masks, sparsity_report
from srcore.stage_cache import StageCache
from srcore.training import configure_cpu_threads


@dataclass
class SearchResult:
    out_dir: Path
    metrics_path: Path
    plot_path: Path
    masks: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def run_search(
    spec: JobSpec,
    out_dir: Path,
    callbacks: Callbacks | None = None,
    cache_dir: Path | None = None,
) -> SearchResult:
    callbacks = callbacks or Callbacks()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = StageCache(Path(cache_dir) if cache_dir else out_dir / "work" / "cache")
    configure_cpu_threads()
    started = time.time()

    callbacks.on_stage("data")
    data = load_job_data(spec)
    callbacks.on_stage("bias")
    bias = bias_stage(spec, data, cache.root)

    units: list[dict[str, Any]] = []
    dense_points: list[dict[str, Any]] = []
    for seed in spec.training.seeds:
        seed_units, dense = _run_seed(spec, data, seed, bias, cache, out_dir, callbacks)
        units.extend(seed_units)
        if dense is not None:
            dense_points.append(
                {
                    "seed": seed,
                    "sparsity": 0.0,
                    "stage": "dense",
                    "selected_step": dense.result["selected_step"],
                    "metrics": _eval_only(dense.result["selected"]),
                    "history": dense.result["history"],
                    "cached": dense.cached,
                }
            )

    callbacks.on_stage("export", "report")
    report = {
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec_hash(spec),
        "task": data.task.name,
        "labels": list(data.labels),
        "selection_metric": data.selection_key,
        "data": {
            "train": len(data.train),
            "dev": len(data.dev),
            "ood": {k: len(v) for k, v in data.ood.items()},
            "train_origin": data.train.origin,
        },
        "bias": None if bias is None else bias.report,
        "dense": dense_points,
        "results": units,
        "summary": summarise(units),
        "versions": library_versions(),
        "seconds": round(time.time() - started, 2),
    }
    metrics_path = write_report(report, out_dir)
    points = [*dense_points, *units]
    plot_path = plot_report(
        points,
        out_dir / "report.png",
        title=f"{data.task.name}: {spec.pruning.method}, "
        f"{spec.pruning.scenario}, loss {spec.debias.loss}",
    )
    return SearchResult(
        out_dir=out_dir,
        metrics_path=metrics_path,
        plot_path=plot_path,
        masks=[Path(u["mask"]) for u in units],
        checkpoints=[Path(u["checkpoint"]) for u in units],
        summary=report["summary"],
    )


def _eval_only(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, dict)}


def _run_seed(
    spec: JobSpec,
    data: JobData,
    seed: int,
    bias,
    cache: StageCache,
    out_dir: Path,
    callbacks: Callbacks,
) -> tuple[list[dict[str, Any]], DenseModel | None]:
    p = spec.pruning
    work = out_dir / "work" / f"seed-{seed}"
    done_dir = work / "done"
    done_dir.mkdir(parents=True, exist_ok=True)

    # The conf_reg teacher first: a dense fine-tune with the job's conf_reg loss needs it.
    # It is always the dense CE model (the stage cache makes it the same entry as a CE
    # dense fine-tune below).
    teacher = None
    if needs_teacher(spec):
        if spec.debias.teacher.source == "file":
            teacher = teacher_from_file(spec, data)
        else:
            ce_model = dense_stage(spec, data, seed, "none", bias, cache, callbacks)
            teacher = teacher_probabilities(spec, data, ce_model, cache)
    dense = None
    if needs_dense(spec):
        dense_loss = spec.debias.loss if spec.dense.loss == "job" else "none"
        dense = dense_stage(spec, data, seed, dense_loss, bias, cache, callbacks, teacher)

    ctx = SearchContext(spec, data, seed, bias, teacher, callbacks, work)
    start = _start_model(spec, data, seed, dense)

    # Finished units from an earlier attempt are read back, not recomputed.
    done_units = [json.loads(f.read_text()) for f in done_dir.glob("unit-*.json")]
    finished = {float(unit["sparsity"]): unit for unit in done_units}
    if all(s in finished for s in p.sparsities):
        return [finished[s] for s in p.sparsities], dense

    callbacks.on_stage("search", f"seed {seed}: {p.method}, {p.scenario}")
    if p.method == "mask_training":
        found_iter = mask_training(ctx, start)
    elif p.method == "imp":
        found_iter = imp(ctx, start, rewind=p.rewind)
    else:
        found_iter = one_shot_magnitude(ctx, start)

    units: list[dict[str, Any]] = []
    for found in found_iter:
        if found.sparsity in finished:
            units.append(finished[found.sparsity])
            continue
        search_found = found
        if p.scenario == "pretrained_retrain":
            callbacks.on_stage("retrain", f"seed {seed}, sparsity {found.sparsity:g}")
            found = retrain(ctx, found)
        unit = _export_unit(spec, data, seed, found, search_found, out_dir, callbacks)
        tmp = done_dir / f".unit-{found.sparsity:.2f}.json.tmp"
        tmp.write_text(json.dumps(unit, default=str))
        tmp.replace(done_dir / f"unit-{found.sparsity:.2f}.json")
        units.append(unit)
    units.sort(key=lambda u: u["sparsity"])
    return units, dense


def _start_model(
    spec: JobSpec, data: JobData, seed: int, dense: DenseModel | None
) -> Callable[[], nn.Module]:
    """Where the search starts: the dense fine-tuned model (scenario 1, and scenario 2's mask
    training), or the pre-trained model with a classifier seeded by `seed`."""
    p = spec.pruning
    from_dense = p.scenario == "finetuned" or (
        p.scenario == "pretrained_retrain" and p.method == "mask_training"
    )
    if from_dense:
        assert dense is not None
        return lambda: load_model(data.model_path, data.labels, seed, state_dir=dense.path)
    return lambda: load_model(data.model_path, data.labels, seed, spec.model.revision)


def _export_unit(
    spec: JobSpec,
    data: JobData,
    seed: int,
    found: Found,
    search_found: Found,
    out_dir: Path,
    callbacks: Callbacks,
) -> dict[str, Any]:
    callbacks.on_stage("export", f"seed {seed}, sparsity {found.sparsity:g}")
    tag = f"{found.sparsity:.2f}"
    model = load_model(data.model_path, data.labels, seed, spec.model.revision)
    model.load_state_dict(found.state)
    report = sparsity_report(found.masks, model_parameter_count(model))
    mask_meta = {
        "task": data.task.name,
        "labels": list(data.labels),
        "model": spec.model.name_or_path,
        "method": spec.pruning.method,
        "scenario": spec.pruning.scenario,
        "loss": spec.debias.loss,
        "seed": seed,
        "target_sparsity": found.sparsity,
        "threshold": spec.pruning.threshold,
        "selected_step": search_found.selected_step,
        "spec_hash": spec_hash(spec),
        "sparsity": report,
    }
    # Scenario 3: the random classifier is part of the subnetwork; without it the mask
    # cannot be reproduced.
    weights = head_state_dict(model) if spec.pruning.scenario == "pretrained_frozen" else None
    mask_path = out_dir / "masks" / f"seed-{seed}" / f"mask-{tag}.safetensors"
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    save_masks(mask_path, found.masks, mask_meta, weights=weights)
    ckpt_dir = out_dir / "checkpoints" / f"seed-{seed}" / f"sparsity-{tag}"
    export_checkpoint(
        model, data.tokenizer, data.labels, ckpt_dir, masks=found.masks, overwrite=True
    )
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "seed": seed,
        "sparsity": found.sparsity,
        "stage": found.stage,
        "selected_step": found.selected_step,
        "metrics": _eval_only(found.selected),
        "selection": found.selected.get("selection"),
        "history": found.history,
        "search_history": search_found.history if search_found is not found else None,
        "sparsity_report": {k: v for k, v in report.items() if k != "per_matrix"},
        "movement": found.movement,
        "mask": str(mask_path),
        "checkpoint": str(ckpt_dir),
    }


def summarise(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds of each set's headline numbers, per sparsity."""
    by_sparsity: dict[float, list[dict[str, Any]]] = {}
    for unit in units:
        by_sparsity.setdefault(unit["sparsity"], []).append(unit)
    rows = []
    for sparsity in sorted(by_sparsity):
        group = by_sparsity[sparsity]
        sets: dict[str, dict[str, dict[str, float]]] = {}
        for name in group[0]["metrics"]:
            for key in ("accuracy", "f1"):
                values = [u["metrics"][name].get(key) for u in group]
                values = [v for v in values if isinstance(v, int | float)]
                if values:
                    sets.setdefault(name, {})[key] = {
                        "mean": statistics.fmean(values),
                        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                        "n": len(values),
                    }
        rows.append({"sparsity": sparsity, "seeds": [u["seed"] for u in group], "sets": sets})
    return rows


def clean_work(out_dir: Path) -> None:
    """Drop the resumable training state of a finished job (trainer checkpoints can weigh
    more than the artifacts); the stage cache under OUT/work/cache stays for reuse."""
    work = Path(out_dir) / "work"
    if not work.exists():
        return
    for entry in work.iterdir():
        if entry.name == "cache":
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()

"""`run_search`: a whole job, bias model → dense fine-tune → search → retrain → export.

Outputs: `srcore.jobspec.layout.OutputLayout` names every file (the contract the worker
uploads); the typed results are `srcore.jobspec.results`. Running it again on the same OUT
resumes: finished units are read back, an interrupted training continues from its last
checkpoint.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srcore.export import (
    export_checkpoint,
    library_versions,
    plot_report,
    write_card,
    write_report,
)
from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.layout import OutputLayout
from srcore.jobspec.results import DensePoint, ResultUnit, SearchResult
from srcore.jobspec.spec import JobSpec, spec_hash
from srcore.model_card import CardFacts, model_card
from srcore.pipeline.export_extras import ensure_dense_reference, export_onnx_unit, measure_unit
from srcore.pipeline.inputs import load_job_data, load_model
from srcore.pipeline.methods import pruning_method
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.progress import JobProgress, expected_work
from srcore.pipeline.search import Found, retrain
from srcore.pipeline.stages import (
    DenseModel,
    StageContext,
    bias_stage,
    dense_stage,
    set_metrics,
    teacher_stage,
)
from srcore.pruning import head_state_dict, model_parameter_count, save_masks, sparsity_report
from srcore.pruning.structured import check_structured_model, structure_units, structured_report
from srcore.stage_cache import StageCache
from srcore.training import configure_cpu_threads, pick_device, precision_info
from srcore.training.device import apply_numerics, describe_device, resolve_precision


def run_search(
    spec: JobSpec,
    out_dir: Path,
    callbacks: Callbacks | None = None,
    cache_dir: Path | None = None,
) -> SearchResult:
    # Every Progress carries the whole job's fraction, ETA and elapsed time.
    tracker = JobProgress(callbacks or Callbacks())
    callbacks = tracker
    layout = OutputLayout(Path(out_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    cache = StageCache(Path(cache_dir) if cache_dir else layout.default_cache_dir)
    configure_cpu_threads()
    t = spec.training  # TF32 / determinism for everything this job runs, trainers or not
    apply_numerics(pick_device(), tf32=t.tf32, deterministic=t.deterministic)
    resolve_precision(t.precision, pick_device())  # bf16 on a GPU without it: refused at once
    started = time.time()

    callbacks.on_stage("data")
    data = load_job_data(spec)
    plan = StagePlan.from_spec(spec)
    if plan.structured:  # a model without a BERT-style FFN: refused before any stage
        check_structured_model(
            data.model_path, len(data.labels), plan.structure, spec.model.revision
        )
    eval_examples = sum(len(s.encoded) for s in data.eval_sets)
    tracker.plan(expected_work(spec, plan, len(data.encoded_train), eval_examples))
    ctx = StageContext(spec, plan, data, cache, callbacks, layout)
    callbacks.on_stage("bias")
    ctx = ctx.with_(bias=bias_stage(ctx))

    units: list[ResultUnit] = []
    dense_points: list[DensePoint] = []
    for seed in spec.training.seeds:
        seed_units, dense = _run_seed(ctx.with_(seed=seed))
        units.extend(seed_units)
        if dense is not None:
            dense_points.append(dense)

    callbacks.on_stage("export", "report")
    bias = ctx.bias
    result = SearchResult(
        out_dir=layout.root,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec_hash(spec),
        task=data.task.name,
        labels=list(data.labels),
        selection_metric=data.selection_key,
        data={
            "train": len(data.train),
            "dev": len(data.dev),
            "ood": {k: len(v) for k, v in data.ood.items()},
            # What the spec gave (or the task's default), never where the server keeps it.
            **data_sources(data.task, spec),
        },
        bias=None if bias is None else bias.report,
        dense=dense_points,
        units=units,
        summary=summarise(units),
        versions=library_versions(),
        precision=precision_info(
            t.precision, pick_device(), tf32=t.tf32, deterministic=t.deterministic
        ),
        device=describe_device(pick_device()),
        seconds=round(time.time() - started, 2),
    )
    write_report(result.report(), layout.root, layout.metrics_path.name)
    plot_report(
        [p.as_json() for p in [*dense_points, *units]],
        layout.plot_path,
        title=f"{data.task.name}: {plan.method}, {plan.scenario}, loss {spec.debias.loss}",
    )
    cache.close()  # the stage cache entries this search used may be evicted from now on
    return result


def data_sources(task: Any, spec: JobSpec) -> dict[str, Any]:
    """The sets a job read, as its spec names them (`sample:` for bundled files)."""

    def given(source: Any) -> dict[str, Any]:
        return source.model_dump(mode="json", exclude_none=True)

    sources: dict[str, Any] = {
        "train_source": given(task.train),
        "dev_source": given(task.dev),
        "ood_sources": {name: given(source) for name, source in task.ood.items()},
    }
    if spec.data.ood_training is not None:
        sources["ood_training"] = spec.data.ood_training.model_dump(mode="json", exclude_none=True)
    return sources


def _run_seed(ctx: StageContext) -> tuple[list[ResultUnit], DensePoint | None]:
    plan, seed, callbacks = ctx.plan, ctx.seed, ctx.callbacks
    ctx.layout.done_dir(seed).mkdir(parents=True, exist_ok=True)

    # The teacher first: a dense fine-tune with the job's conf_reg loss needs it.
    ctx = ctx.with_(teacher=teacher_stage(ctx))
    dense = dense_stage(ctx, plan.dense_loss) if plan.dense_loss is not None else None
    point = None
    if dense is not None:
        point = dense.point()
        callbacks.on_dense_point(point)
    start = _start_model(ctx, dense)

    # Finished units from an earlier attempt are read back, not recomputed.
    done = [ResultUnit.read(f) for f in ctx.layout.finished_unit_files(seed)]
    finished = {unit.sparsity: unit for unit in done}
    if all(s in finished for s in plan.sparsities):
        for s in plan.sparsities:
            callbacks.on_unit(finished[s])
        return [finished[s] for s in plan.sparsities], point

    callbacks.on_stage("search", f"seed {seed}: {plan.method}, {plan.scenario}")
    units: list[ResultUnit] = []
    for found in pruning_method(plan.method).search(ctx, start):
        if found.sparsity in finished:
            unit = finished[found.sparsity]
        else:
            search_found = found
            if plan.retrains:
                callbacks.on_stage("retrain", f"seed {seed}, sparsity {found.sparsity:g}")
                found = retrain(ctx, found)
            unit = _export_unit(ctx, found, search_found, point)
            unit.write(ctx.layout.unit_file(seed, found.sparsity))
        callbacks.on_unit(unit)
        units.append(unit)
    units.sort(key=lambda u: u.sparsity)
    return units, point


def _start_model(ctx: StageContext, dense: DenseModel | None) -> Callable[[], nn.Module]:
    """Where the search starts (StagePlan.start): the dense fine-tuned model, or the
    pre-trained model with a classifier seeded by the seed."""
    data, seed = ctx.data, ctx.seed
    if ctx.plan.start == "dense":
        assert dense is not None
        return lambda: load_model(data.model_path, data.labels, seed, state_dir=dense.path)
    return lambda: load_model(data.model_path, data.labels, seed, ctx.spec.model.revision)


def _export_unit(
    ctx: StageContext, found: Found, search_found: Found, dense: DensePoint | None = None
) -> ResultUnit:
    spec, plan, data, seed = ctx.spec, ctx.plan, ctx.data, ctx.seed
    ctx.callbacks.on_stage("export", f"seed {seed}, sparsity {found.sparsity:g}")
    model = load_model(data.model_path, data.labels, seed, spec.model.revision)
    model.load_state_dict(found.state)
    report = sparsity_report(found.masks, model_parameter_count(model))
    if plan.structured:  # neurons kept per layer, share of the encoder removed
        units = structure_units(model, plan.structure)
        report["structured"] = structured_report(units, found.masks, model)
    mask_meta = {
        "task": data.task.name,
        "labels": list(data.labels),
        "model": spec.model.name_or_path,
        "method": plan.method,
        "scenario": plan.scenario,
        "loss": spec.debias.loss,
        "seed": seed,
        "target_sparsity": found.sparsity,
        "threshold": plan.pruning.threshold,
        "selected_step": search_found.selected_step,
        "spec_hash": spec_hash(spec),
        "sparsity": report,
    }
    weights = head_state_dict(model) if plan.exports_head else None
    mask_path = ctx.layout.mask_path(seed, found.sparsity)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    save_masks(mask_path, found.masks, mask_meta, weights=weights)
    ckpt_dir = ctx.layout.checkpoint_dir(seed, found.sparsity)
    metrics = set_metrics(found.selected)
    export_checkpoint(
        model, data.tokenizer, data.labels, ckpt_dir, masks=found.masks, overwrite=True,
        shrink_ffn_neurons=plan.structured,
    )  # fmt: skip
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    onnx = None
    if spec.export.onnx != "none":
        ctx.callbacks.on_stage("export", f"seed {seed}, sparsity {found.sparsity:g}: ONNX")
        onnx = export_onnx_unit(
            data, ckpt_dir, ctx.layout.onnx_dir(seed, found.sparsity), spec.export.onnx,
            metrics, spec.evaluation.batch_size,
        )  # fmt: skip
    reference = ctx.layout.dense_reference_dir
    measured = measure_unit(
        spec.export.measure, ckpt_dir, onnx=onnx,
        reference=lambda: ensure_dense_reference(reference, lambda: load_model(
            data.model_path, data.labels, seed, spec.model.revision), data.labels),
    )  # fmt: skip
    card = model_card(CardFacts(
        task=data.task.name, labels=list(data.labels), base_model=spec.model.name_or_path,
        train_source=data_sources(data.task, spec)["train_source"], loss=spec.debias.loss,
        method=plan.method, scenario=plan.scenario, seed=seed,
        target_sparsity=found.sparsity,
        sparsity={k: v for k, v in report.items() if k != "per_matrix"}, metrics=metrics,
        id_set="dev", selected_step=found.selected_step, versions=library_versions(),
        spec_hash=spec_hash(spec), name=spec.name,
        start_metrics=dense.metrics if dense is not None else None,
        start_name=f"dense ({dense.loss})" if dense is not None else None,
        train_rows=len(data.train.examples),
        steps=max((int(h.get("step", 0)) for h in found.history), default=None),
        max_eval_examples=spec.data.max_eval_examples,
        has_pooler=any("pooler" in name for name in found.masks),
        structure=plan.structure,
        measured=measured if isinstance(measured, str) else measured.as_json(),
        onnx=None if onnx is None else onnx.as_json(),
    ))  # fmt: skip
    for folder in [ckpt_dir] + ([onnx.folder] if onnx is not None else []):
        write_card(folder, str(card))
    return ResultUnit(
        seed=seed,
        sparsity=found.sparsity,
        stage=found.stage,
        selected_step=found.selected_step,
        metrics=metrics,
        selection=found.selected.get("selection"),
        history=found.history,
        search_history=search_found.history if search_found is not found else None,
        sparsity_report={k: v for k, v in report.items() if k != "per_matrix"},
        movement=found.movement,
        mask=mask_path,
        checkpoint=ckpt_dir,
        measured=measured,
        onnx=onnx,
    )


def summarise(units: list[ResultUnit]) -> list[dict[str, Any]]:
    """Mean and spread over seeds of each set's headline numbers, per sparsity."""
    by_sparsity: dict[float, list[ResultUnit]] = {}
    for unit in units:
        by_sparsity.setdefault(unit.sparsity, []).append(unit)
    rows = []
    for sparsity in sorted(by_sparsity):
        group = by_sparsity[sparsity]
        sets: dict[str, dict[str, dict[str, float]]] = {}
        for name in group[0].metrics:
            for key in ("accuracy", "f1"):
                values = [u.metrics[name].get(key) for u in group]
                values = [v for v in values if isinstance(v, int | float)]
                if values:
                    sets.setdefault(name, {})[key] = {
                        "mean": statistics.fmean(values),
                        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                        "n": len(values),
                    }
        rows.append({"sparsity": sparsity, "seeds": [u.seed for u in group], "sets": sets})
    return rows


def clean_work(out_dir: Path) -> None:
    """Drop the resumable training state of a finished job (trainer checkpoints can weigh
    more than the artifacts); the stage cache under OUT/work/cache stays for reuse."""
    layout = OutputLayout(Path(out_dir))
    work = layout.work_dir
    if not work.exists():
        return
    for entry in work.iterdir():
        if entry == layout.default_cache_dir:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()

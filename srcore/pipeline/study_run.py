"""Run a whole study on this machine (`srnet study run`): every child job in turn through
`run_search`, one shared stage cache, then the results table, its CSV/JSON, the plot and the
bias models' summary (bias_models.json: what each row's bias model predicts).

Running it again on the same folder resumes: finished children are read back, an interrupted
one continues from its last checkpoint.

Beside table.csv (mean ± sd (n)), seeds.csv holds one record per row × sparsity × seed × metric
(with the child folder as its job, the selected step and the mask file's sha256) and
comparisons.csv the table's paired differences (srcore.jobspec.study_compare); table.json holds
all three ("records", "seeds", "comparisons").
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srcore.files import atomic_write_bytes, exclusive_lock, try_exclusive_lock
from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.layout import OutputLayout, child_dir_name
from srcore.jobspec.results import SearchResult
from srcore.jobspec.spec import spec_hashes
from srcore.jobspec.study import StudyChild, StudyError, StudySpec, expand_study
from srcore.jobspec.study_axis_plot import axis_plot_png, numeric_axes
from srcore.jobspec.study_compare import INTERVAL, comparisons_csv, study_comparisons
from srcore.jobspec.study_plot import plot_study
from srcore.jobspec.study_table import (
    SelectedPoint,
    TableRow,
    points_from_result,
    seed_records,
    seeds_csv,
    study_table,
    table_csv,
    table_records,
)


@dataclass
class StudyRun:
    out_dir: Path
    rows: list[TableRow]
    csv_path: Path
    seeds_path: Path  # seeds.csv
    comparisons_path: Path  # comparisons.csv
    json_path: Path
    plot_path: Path
    seconds: dict[str, float]  # child key → wall seconds of this run (0 when read back)


def machine_info() -> dict[str, Any]:
    """Where the study ran: CPU model, cores this process may use, GPU, library versions."""
    import os
    import platform

    import torch

    from srcore.export import library_versions
    from srcore.training.device import resolve_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # what `training.precision: auto` picks here (bf16 on AVX512-BF16/AMX CPUs, sm ≥ 8.0)
        "auto_precision": resolve_precision("auto", torch.device(device)),
        "python": platform.python_version(),
        "versions": library_versions(),
    }


def run_study(
    study: StudySpec,
    out_dir: Path,
    callbacks_for: Callable[[StudyChild], Callbacks] | None = None,
    log: Callable[[str], None] = print,
    source: str | None = None,
    only: Collection[str] | None = None,
) -> StudyRun:
    """Run every child not finished yet; the table, its JSON and the plot are rewritten after
    each child, so a study stopped half-way still shows what it has (run_info.json says how
    many jobs are done). `source`: the study file, recorded with the command that ran it.
    `only`: run just the children with these table labels or keys (e.g. more seeds for the
    rows a verdict rests on); the others stay unrun and the study incomplete."""
    from srcore.pipeline.run import clean_work, run_search

    out_dir = Path(out_dir)
    children = expand_study(study)
    children_run = children if only is None else select_children(children, only)
    cache = out_dir / "cache"
    timings_path = out_dir / "timings.json"
    # The dense references first: they hold every dense fine-tune the searches start from,
    # and the table has its reference lines early.
    order = [c for c in children_run if c.role == "reference"] + [
        c for c in children_run if c.role != "reference"
    ]
    run = None
    for i, child in enumerate(order, 1):
        child_dir = out_dir / "jobs" / child_dir_name(child.key)
        child_dir.mkdir(parents=True, exist_ok=True)
        # Several `srnet study run` processes may share one study folder (one per core or
        # GPU): each child is run by whichever takes its lock first; the others skip it.
        with try_exclusive_lock(child_dir / ".running") as mine:
            if not mine:
                log(f"[{i}/{len(order)}] {child.label}: another runner has it")
                continue
            metrics = OutputLayout(child_dir).metrics_path
            if metrics.exists() and SearchResult.read(child_dir).spec_hash not in spec_hashes(
                child.spec
            ):
                log(f"{child.label}: the study changed this job's spec; running it again")
                metrics.unlink()
            if not metrics.exists():
                log(f"[{i}/{len(order)}] {child.label}")
                started = time.time()
                callbacks = callbacks_for(child) if callbacks_for else Callbacks()
                run_search(child.spec, child_dir, callbacks, cache_dir=cache)
                clean_work(child_dir)
                with exclusive_lock(out_dir / ".timings.lock"):
                    timings = _read_json(timings_path)
                    timings[child.key] = round(time.time() - started, 1)
                    write_json(timings_path, timings)
        run = _write_outputs(study, children, out_dir, source, only)
    return run if run is not None else _write_outputs(study, children, out_dir, source, only)


def select_children(children: Sequence[StudyChild], names: Collection[str]) -> list[StudyChild]:
    """The children whose label or key is in `names` (study order); StudyError("only") naming
    any name that matches none, with the labels there are."""
    unknown = [n for n in names if not any(n in (c.label, c.key) for c in children)]
    if unknown:
        labels = ", ".join(f"`{c.label}`" for c in children)
        raise StudyError("only", f"no row {', '.join(map(repr, unknown))} (rows: {labels})")
    return [c for c in children if c.label in names or c.key in names]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json.dumps(value, indent=1).encode())


def finished_reports(
    children: list[StudyChild], out_dir: Path
) -> list[tuple[StudyChild, SearchResult]]:
    """Every child whose report exists for its current spec (whoever ran it), with its result."""
    found = []
    for child in children:
        child_dir = out_dir / "jobs" / child_dir_name(child.key)
        if not OutputLayout(child_dir).metrics_path.exists():
            continue
        result = SearchResult.read(child_dir)
        if result.spec_hash in spec_hashes(child.spec):
            found.append((child, result))
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def child_points(child: StudyChild, result: SearchResult, out_dir: Path) -> list[SelectedPoint]:
    """A finished child's selected points, each naming the child's folder (relative to the
    study folder) as its job and, for a subnetwork, the sha256 of its mask file."""
    layout = OutputLayout(result.out_dir)
    hashes = {
        (u.seed, u.sparsity): file_sha256(layout.mask_path(u.seed, u.sparsity))
        for u in result.units
        if layout.mask_path(u.seed, u.sparsity).exists()
    }
    job = result.out_dir.relative_to(out_dir).as_posix()
    return points_from_result(child.key, result, job=job, mask_sha256=hashes)


BIAS_FIELDS = ("kind", "fit", "class_weight", "n", "mean_gold_prob", "mean_p_entailment")
BIAS_OOD_FIELDS = ("accuracy", "entailment_share", "mean_p_entailment_by_gold", "skipped")


def bias_summaries(found: list[tuple[StudyChild, SearchResult]]) -> list[dict[str, Any]]:
    """One entry per distinct bias model of the finished children: its settings, how it scores
    its own training rows, what it predicts on the OOD sets, and the rows that used it."""
    by_model: dict[str, dict[str, Any]] = {}
    for child, result in found:
        bias = result.bias
        if not bias:
            continue
        summary = {k: bias[k] for k in BIAS_FIELDS if k in bias}
        summary["ood"] = {
            name: {k: v for k, v in ood.items() if k in BIAS_OOD_FIELDS}
            for name, ood in (bias.get("ood") or {}).items()
        }
        entry = by_model.setdefault(json.dumps(summary, sort_keys=True), {**summary, "rows": []})
        if child.label not in entry["rows"]:
            entry["rows"].append(child.label)
    return list(by_model.values())


def _write_outputs(
    study: StudySpec,
    children: list[StudyChild],
    out_dir: Path,
    source: str | None,
    only: Collection[str] | None = None,
) -> StudyRun:
    found = finished_reports(children, out_dir)
    points = [p for child, result in found for p in child_points(child, result, out_dir)]
    done = len(found)
    write_json(out_dir / "bias_models.json", bias_summaries(found))
    timings = _read_json(out_dir / "timings.json")
    info_path = out_dir / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.update(machine_info())
    info.update(
        {
            "jobs": len(children),
            "jobs_done": done,
            "complete": done == len(children),
            "job_seconds_total": round(sum(timings.get(c.key, 0.0) for c in children), 1),
        }
    )
    if source is not None:
        info["study_file"] = source
        flags = "".join(f" --only {shlex.quote(name)}" for name in only or ())
        info["command"] = f"srnet study run {source} --out {out_dir.name}{flags}"
    write_json(info_path, info)
    rows = study_table(children, points)
    paths = write_tables(study, rows, out_dir)
    seconds = {c.key: timings.get(c.key, 0.0) for c in children}
    return StudyRun(out_dir, rows, *paths, seconds)


def write_tables(
    study: StudySpec, rows: list[TableRow], out_dir: Path
) -> tuple[Path, Path, Path, Path, Path]:
    """The table files of `rows`: table.csv, seeds.csv, comparisons.csv, table.json and the
    plots (plot.png; plot-AXIS.png per numeric axis). Returns the first five paths."""
    csv_path = out_dir / "table.csv"
    atomic_write_bytes(csv_path, table_csv(rows).encode())
    seeds = seed_records(rows)
    seeds_path = out_dir / "seeds.csv"
    atomic_write_bytes(seeds_path, seeds_csv(rows).encode())
    comparisons = study_comparisons(rows, seeds, study.base.debias.loss)
    comparisons_path = out_dir / "comparisons.csv"
    atomic_write_bytes(comparisons_path, comparisons_csv(comparisons).encode())
    json_path = out_dir / "table.json"
    write_json(
        json_path,
        {
            "study": study.model_dump(mode="json"),
            "records": table_records(rows),
            "seeds": seeds,
            "interval": INTERVAL,
            "comparisons": [d.as_record() for d in comparisons],
        },
    )
    plot_path = plot_study(rows, out_dir / "plot.png", title=study.name or "")
    for axis in numeric_axes(study.axes):  # e.g. plot-stop_at_step.png: metrics vs that axis
        png = axis_plot_png(rows, axis, title=study.name or "")
        if png is not None:
            atomic_write_bytes(out_dir / f"plot-{axis.path.rsplit('.', 1)[-1]}.png", png)
    return csv_path, seeds_path, comparisons_path, json_path, plot_path

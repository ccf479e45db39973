"""The submit form's presets: the jobs' examples (`api.jobs.examples`), described for the form
with their size (training runs, steps, evaluations: `srcore.jobspec.budget`, torch-free) and an
estimate of their training time from what this service measured (issue 19 item 4)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from api.jobs.examples import PRESETS, Preset
from api.jobs.schemas import JobCreate
from srcore.jobspec.budget import training_runs
from srcore.jobspec.spec import JobSpec

__all__ = ["BUNDLED_TRAIN_ROWS", "PRESETS", "Preset", "preset_size", "presets_description"]

# Rows of the bundled training samples (`sample:` files; a test counts them with the loader).
BUNDLED_TRAIN_ROWS: dict[str, int] = {"mnli": 8999, "qqp": 8999}

# (queue, model) -> training examples/s of the newest finished jobs there, newest first
Speeds = Callable[[str, str], list[float]]


def preset_size(spec: JobSpec) -> dict[str, Any] | None:
    """The preset's training runs on its data, or None when its training set is not a bundled
    sample of known size (a file or hub set: counted only when the job reads it)."""
    rows = BUNDLED_TRAIN_ROWS.get(spec.task)
    if rows is None or spec.data.train is not None or spec.data.ood_training is not None:
        return None
    examples = min(rows, spec.data.max_train_examples or rows)
    runs = training_runs(spec, examples)
    per_step = min(spec.training.batch_size, examples)
    return {
        "train_examples": examples,
        "runs": [asdict(r) for r in runs],
        "steps": sum(r.runs * r.steps for r in runs),
        "evaluations": sum(r.runs * r.evaluations for r in runs),
        "trained_examples": sum(r.runs * r.steps for r in runs) * per_step,
    }


def duration_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if hours < 48 else f"{round(hours / 24)} days"


def _estimate(size: dict[str, Any] | None, queue: str, model: str, speeds: Speeds) -> dict:
    found = speeds(queue, model)
    if size is None or not found:
        why = (
            "its training set is counted when the job reads it"
            if size is None
            else f"no finished job with {model} on queue {queue} yet"
        )
        return {
            "queue": queue,
            "seconds": None,
            "examples_per_s": None,
            "jobs": len(found),
            "text": f"No measurement yet on this service ({why}).",
        }
    speed = statistics.median(found)
    seconds = size["trained_examples"] / speed
    return {
        "queue": queue,
        "seconds": round(seconds),
        "examples_per_s": round(speed, 1),
        "jobs": len(found),
        "text": f"About {duration_text(seconds)} of training on queue {queue}, at the "
        f"{speed:,.0f} examples/s this service measured (median of {len(found)} finished "
        f"{'job' if len(found) == 1 else 'jobs'} with {model}); evaluations come on top.",
    }


def size_text(size: dict[str, Any] | None) -> str:
    if size is None:
        return "Size: set by the training file."
    runs = ", ".join(
        f"{r['stage']} {r['runs']} × {r['steps']:,} steps" for r in size["runs"] if r["steps"]
    )
    return (
        f"{size['steps']:,} training steps ({runs}) and {size['evaluations']:,} evaluations "
        f"on {size['train_examples']:,} training examples."
    )


def presets_description(speeds: Speeds, default_queue: str) -> list[dict[str, Any]]:
    out = []
    for preset in PRESETS:
        body = JobCreate.model_validate(preset.spec)
        spec = body.spec()
        size = preset_size(spec)
        queue = body.queue or default_queue
        out.append(
            {
                **asdict(preset),
                "size": size,
                "size_text": size_text(size),
                "estimate": _estimate(size, queue, spec.model.name_or_path, speeds),
            }
        )
    return out

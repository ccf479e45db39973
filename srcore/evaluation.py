"""ID and OOD evaluation: fast batched prediction and the metrics of each evaluation set.

Predictions are made in the model's label space (the task's labels) and mapped to the
evaluation set's labels by name; HANS maps neutral and contradiction to non-entailment, and a
label the set does not have (FEVER-Symmetric has no NOT ENOUGH INFO gold) counts as wrong.
Metrics are plain floats in nested dicts (JSON-serialisable); a subset with no example gives
None rather than NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from srcore.eval_batches import (
    BatchCache,
    EvalBatches,
    Inputs,
    TokenRows,
    frozen_linears,
    padded_inputs,
)
from srcore.jobspec.names import METRIC_NAMES, MetricName
from srcore.training.device import Precision, autocast, resolve_precision
from srcore.training.encoding import EncodedSplit
from srcore.training.memory import out_of_memory, release_cached_memory
from srcore.training.trainer import forward_logits

logger = logging.getLogger(__name__)

HANS_HEURISTICS = ("lexical_overlap", "subsequence", "constituent")


def predict(
    model: nn.Module,
    encoded: EncodedSplit,
    batch_size: int = 256,
    device: torch.device | None = None,
    precision: Precision = "auto",
    progress: Callable[[int], None] | None = None,
    batches: BatchCache | None = None,
) -> np.ndarray:
    """Logits (N, C) as float32, in the split's order; `progress(examples done)` after
    every batch.

    Examples are batched longest first so each batch pads to nearly its own length;
    `batches` keeps those batches for the next call on the same split (an evaluate_fn sorts
    and pads its sets once). Each linear layer's weight is computed and cast once per call
    (`frozen_linears`); the logits are those of the plain forward, bit for bit. On a device
    out-of-memory the batch is halved for the rest of the split (logits do not depend on the
    batch); at batch 1 it is a `DeviceOutOfMemoryError`.
    """
    if device is None:
        device = next(model.parameters()).device
    pad_multiple = 8 if device.type == "cuda" else None
    cache = batches if batches is not None else BatchCache()
    plan = cache.get(encoded, batch_size, pad_multiple)
    weights_dtype = torch.bfloat16 if resolve_precision(precision, device) == "bf16" else None
    # bf16 on the CPU: linears skip padded tokens (exact there: a row of oneDNN's bf16 GEMM
    # does not depend on the rows beside it; fp32 MKL's does for a few rows, CUDA's often)
    rows = TokenRows() if weights_dtype is not None and device.type == "cpu" else None
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(),
            autocast(device, precision),
            frozen_linears(model, weights_dtype, rows),
        ):
            logits = _predict_batches(model, encoded, plan, device, progress, rows)
    finally:
        model.train(was_training)
    if logits is None:
        raise ValueError(f"{encoded.name}: nothing to predict (empty split)")
    return logits


def _predict_batches(
    model: nn.Module,
    encoded: EncodedSplit,
    plan: EvalBatches,
    device: torch.device,
    progress: Callable[[int], None] | None,
    packing: TokenRows | None = None,
) -> np.ndarray | None:
    """The forward over `plan`'s batches; after an out-of-memory error the rest of the rows
    go in batches of half the size, collated as they come (and not packed)."""
    logits: np.ndarray | None = None
    pending: list[np.ndarray] = list(plan.rows)
    ready: list[Inputs | None] = list(plan.inputs)
    real: list[torch.Tensor | None] = list(plan.real)
    size, done, index = plan.batch_size, 0, 0
    while index < len(pending):
        rows, inputs = pending[index], ready[index]
        try:
            if inputs is None:
                inputs = padded_inputs(encoded, rows, plan.pad_multiple)
            if packing is not None:
                packing.set(inputs["attention_mask"], real[index])
            moved = {k: v.to(device) for k, v in inputs.items()}
            out = forward_logits(model, moved).float().cpu().numpy()
        except torch.OutOfMemoryError as exc:
            tokens = int(encoded.lengths[rows].max())
            if size == 1:
                raise out_of_memory(
                    stage="evaluation", what=f"predicting {encoded.name}",
                    batch_size=1, tokens=tokens, device=device,
                    lower="training.max_length (evaluation is already at batch 1)",
                ) from exc  # fmt: skip
            moved = out = None  # type: ignore[assignment]
            release_cached_memory(device)
            size = max(1, size // 2)
            logger.warning(
                "%s: out of memory at evaluation batch %d × %d tokens on %s; "
                "evaluating the rest at batch %d (evaluation.batch_size %d)",
                encoded.name, len(rows), tokens, device, size, plan.batch_size,
            )  # fmt: skip
            rest = np.concatenate(pending[index:])
            pending = pending[:index] + [rest[i : i + size] for i in range(0, len(rest), size)]
            ready = ready[:index] + [None] * (len(pending) - index)
            real = real[:index] + [None] * (len(pending) - index)
            continue
        if logits is None:
            logits = np.empty((len(encoded), out.shape[1]), dtype=np.float32)
        logits[rows] = out
        done += len(rows)
        index += 1
        if progress is not None:
            progress(done)
    return logits


# --- metrics on predicted and gold label indices ------------------------------------------


def _rate(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float | None:
    return _rate(np.asarray(pred) == np.asarray(gold))


def f1_score(pred: np.ndarray, gold: np.ndarray, positive: int) -> float:
    """F1 of the positive class (0.0 when there is no true positive)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    tp = int(((pred == positive) & (gold == positive)).sum())
    fp = int(((pred == positive) & (gold != positive)).sum())
    fn = int(((pred != positive) & (gold == positive)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def per_class_accuracy(
    pred: np.ndarray, gold: np.ndarray, label_names: Sequence[str]
) -> dict[str, float | None]:
    """Accuracy over the examples of each gold class (the class's recall)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    return {name: accuracy(pred[gold == i], gold[gold == i]) for i, name in enumerate(label_names)}


def hans_metrics(
    pred: np.ndarray, gold: np.ndarray, heuristics: Sequence[str], label_names: Sequence[str]
) -> dict[str, Any]:
    """Overall accuracy and accuracy per heuristic × gold (entailed / non-entailed).

    `pred` and `gold` index `label_names` ("entailment", "non-entailment").
    """
    pred, gold, heur = np.asarray(pred), np.asarray(gold), np.asarray(heuristics)
    ent = label_names.index("entailment")
    hit = pred == gold

    def split(rows: np.ndarray) -> dict[str, float | None]:
        return {
            "accuracy": _rate(hit[rows]),
            "entailed": _rate(hit[rows & (gold == ent)]),
            "non_entailed": _rate(hit[rows & (gold != ent)]),
        }

    everything = np.ones(len(gold), dtype=bool)
    names = [h for h in HANS_HEURISTICS if h in set(heur)]
    names += sorted(set(heur) - set(HANS_HEURISTICS))
    return {
        **split(everything),
        "heuristics": {h: split(heur == h) for h in names},
        "n": len(gold),
    }


def paws_metrics(
    pred: np.ndarray, gold: np.ndarray, label_names: Sequence[str], positive_label: str = "1"
) -> dict[str, Any]:
    return {
        "accuracy": accuracy(pred, gold),
        "f1": f1_score(pred, gold, list(label_names).index(positive_label)),
        "per_class": per_class_accuracy(pred, gold, label_names),
        "n": len(gold),
    }


# --- from logits to a set's metrics ------------------------------------------------------


def label_map(
    task_labels: Sequence[str], eval_labels: Sequence[str], metric: MetricName
) -> np.ndarray:
    """For each task label, the index of the eval label it counts as (-1: always wrong)."""
    eval_labels = list(eval_labels)
    if _metric(metric).entailment_vs_rest:
        missing = {"entailment", "non-entailment"} - set(eval_labels)
        if missing:
            raise ValueError(f"HANS labels must be entailment/non-entailment, got {eval_labels}")
        ent, non = eval_labels.index("entailment"), eval_labels.index("non-entailment")
        return np.array([ent if t == "entailment" else non for t in task_labels])
    table = np.array([eval_labels.index(t) if t in eval_labels else -1 for t in task_labels])
    if (table < 0).all():
        raise ValueError(f"no task label {list(task_labels)} is an eval label {eval_labels}")
    return table


def split_metrics(
    logits: np.ndarray,
    encoded: EncodedSplit,
    metric: MetricName,
    task_labels: Sequence[str],
    eval_labels: Sequence[str] | None = None,
    positive_label: str | None = None,
) -> dict[str, Any]:
    """Metrics of `metric` for predictions `logits` (N, len(task_labels)) on `encoded`, with
    the share of the most predicted class and whether the model collapsed onto it."""
    eval_labels = tuple(eval_labels or encoded.label_names)
    raw = logits.argmax(axis=1)
    pred = label_map(task_labels, eval_labels, metric)[raw]
    metrics = _metric_values(pred, encoded, metric, eval_labels, positive_label)
    # HANS is read 2-way (neutral and contradiction are one answer); elsewhere the task's own
    # classes count (an NEI answer on FEVER-Symmetric is a class of its own).
    spread = (
        prediction_spread(pred, eval_labels)
        if _metric(metric).entailment_vs_rest
        else prediction_spread(raw, task_labels)
    )
    return {**metrics, **spread}


COLLAPSE_SHARE = 0.95  # one class predicted for at least this share of a set: collapsed


def prediction_spread(pred: np.ndarray, eval_labels: Sequence[str]) -> dict[str, Any]:
    """Which class the model predicts most on a set, its share, and the collapse flag.

    A subnetwork that answers one class for almost every example has collapsed: its
    accuracy on that class's examples is no robustness gain (science.md).
    """
    if len(pred) == 0:
        return {"majority_label": None, "majority_share": None, "collapsed": False}
    counts = np.bincount(pred, minlength=len(eval_labels))
    top = int(counts.argmax())
    share = float(counts[top] / len(pred))
    return {
        "majority_label": str(eval_labels[top]),
        "majority_share": share,
        "collapsed": share >= COLLAPSE_SHARE,
    }


# --- the metric registry: spec name → how a set is scored --------------------------------

# fn(pred, encoded, eval_labels, positive_label) → metrics; pred indexes eval_labels
MetricFunction = Callable[[np.ndarray, EncodedSplit, tuple[str, ...], str | None], dict[str, Any]]


@dataclass(frozen=True)
class Metric:
    name: str
    function: MetricFunction
    # predictions read as entailment vs the rest (HANS: neutral and contradiction are one answer)
    entailment_vs_rest: bool = False


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, entailment_vs_rest: bool = False):
    """Register a metric under a name of `srcore.jobspec.names.METRIC_NAMES`."""
    if name not in METRIC_NAMES:
        raise ValueError(f"metric '{name}' is not declared in srcore.jobspec.names.METRIC_NAMES")

    def register(function: MetricFunction) -> MetricFunction:
        if name in METRICS:
            raise ValueError(f"metric '{name}' is registered twice")
        METRICS[name] = Metric(name, function, entailment_vs_rest)
        return function

    return register


def _metric_values(
    pred: np.ndarray,
    encoded: EncodedSplit,
    metric: MetricName,
    eval_labels: tuple[str, ...],
    positive_label: str | None,
) -> dict[str, Any]:
    return _metric(metric).function(pred, encoded, eval_labels, positive_label)


def _metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(METRICS)}")
    return METRICS[name]


@register_metric("hans", entailment_vs_rest=True)
def _hans(pred, encoded, eval_labels, positive_label):
    if "heuristic" not in encoded.meta:
        raise ValueError(f"{encoded.name}: HANS examples need meta['heuristic']")
    return hans_metrics(pred, encoded.labels, encoded.meta["heuristic"], eval_labels)


@register_metric("paws")
def _paws(pred, encoded, eval_labels, positive_label):
    return paws_metrics(pred, encoded.labels, eval_labels, positive_label or "1")


@register_metric("f1")
def _f1(pred, encoded, eval_labels, positive_label):
    if positive_label is None:
        raise ValueError("metric 'f1' needs positive_label")
    gold = encoded.labels
    f1 = f1_score(pred, gold, eval_labels.index(positive_label))
    return {"accuracy": accuracy(pred, gold), "f1": f1, "n": len(gold)}


@register_metric("accuracy")
@register_metric("fever_symmetric")
def _accuracy(pred, encoded, eval_labels, positive_label):
    return {"accuracy": accuracy(pred, encoded.labels), "n": len(encoded.labels)}


class SplitEvaluation(NamedTuple):
    metrics: dict[str, Any]  # JSON-serialisable, headline "accuracy"
    predictions: dict[str, str]  # uid -> predicted task label (before any HANS mapping)


def evaluate_split(
    model: nn.Module,
    encoded: EncodedSplit,
    metric: MetricName,
    task_labels: Sequence[str],
    eval_labels: Sequence[str] | None = None,
    positive_label: str | None = None,
    batch_size: int = 256,
    device: torch.device | None = None,
    precision: Precision = "auto",
) -> SplitEvaluation:
    """Predict `encoded` and compute its metrics; `eval_labels` default to the split's."""
    logits = predict(model, encoded, batch_size, device, precision)
    metrics = split_metrics(logits, encoded, metric, task_labels, eval_labels, positive_label)
    names = np.asarray(task_labels)[logits.argmax(axis=1)]
    return SplitEvaluation(metrics, dict(zip(encoded.uids, names.tolist(), strict=True)))


# --- what a Trainer evaluates ------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """One set evaluated during training: the ID dev set or an OOD set."""

    name: str
    encoded: EncodedSplit
    metric: MetricName = "accuracy"
    positive_label: str | None = None


def make_evaluate_fn(
    sets: Sequence[EvalSet],
    task_labels: Sequence[str],
    selection_set: str,
    selection_key: str = "accuracy",
    batch_size: int = 256,
    precision: Precision = "auto",
) -> Callable[[nn.Module], dict[str, Any]]:
    """An `evaluate_fn` for `Trainer`: {set name: metrics, ..., "selection": the ID metric}.

    Only `selection_set` (the ID dev set) decides the selection; OOD sets are reported.
    """
    if selection_set not in {s.name for s in sets}:
        raise ValueError(f"selection set '{selection_set}' is not among the evaluation sets")

    total = sum(len(s.encoded) for s in sets)
    batches = BatchCache()  # each set sorted and padded once, for every evaluation

    def evaluate_fn(
        model: nn.Module, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """`progress(examples done, examples total)` over all the sets, as it goes."""
        out: dict[str, Any] = {}
        before = 0
        if progress is not None:
            progress(0, total)
        for s in sets:

            def on_batch(done: int, before: int = before) -> None:
                if progress is not None:
                    progress(before + done, total)

            logits = predict(
                model, s.encoded, batch_size, precision=precision, progress=on_batch,
                batches=batches,
            )  # fmt: skip
            before += len(s.encoded)
            out[s.name] = split_metrics(
                logits, s.encoded, s.metric, task_labels, positive_label=s.positive_label
            )
        out["selection"] = out[selection_set][selection_key]
        return out

    return evaluate_fn

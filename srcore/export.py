"""Artifacts: a plain `save_pretrained` checkpoint with the pruned weights zeroed, and the
report (metrics.json and a plot of ID/OOD accuracy against sparsity).

Everything is written under a temporary name beside the target and renamed into place, so a
reader never sees a half-written artifact.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from srcore.files import atomic_write_bytes
from srcore.jobspec.figures import GRID_ALPHA, new_figure, png_bytes
from srcore.jobspec.layout import REPORT_FILE
from srcore.pruning.structured import shrink_ffn

_PARAMETRIZATIONS = ".parametrizations."


@torch.no_grad()
def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state_dict under its plain names.

    A matrix still carrying a parametrization (mask training before `ScoreMasker.remove`)
    contributes its effective, masked weight under the original key; scores and other
    parametrization state are dropped.
    """
    state: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if _PARAMETRIZATIONS not in key:
            state[key] = value
            continue
        prefix, _, rest = key.partition(_PARAMETRIZATIONS)
        attr, _, leaf = rest.partition(".")
        if leaf == "original":
            state[f"{prefix}.{attr}"] = getattr(model.get_submodule(prefix), attr).detach()
    return state


def _replace_dir(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists")
        trash = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, trash)
        os.replace(tmp, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def export_checkpoint(
    model: nn.Module,
    tokenizer: Any,
    label_names: Sequence[str],
    out_dir: str | os.PathLike[str],
    masks: Mapping[str, Tensor] | None = None,
    *,
    overwrite: bool = False,
    card: str | None = None,
    shrink_ffn_neurons: bool = False,
) -> Path:
    """Write a directory that `AutoModelForSequenceClassification.from_pretrained` loads as-is.

    config.json names the task's labels (id2label/label2id) and the model's class in
    `architectures` (e.g. BertForSequenceClassification, so the hub and pipelines pick the
    head); model.safetensors holds the weights with every pruned entry of `masks` set to zero;
    the tokenizer files sit beside them; `card` becomes README.md (srcore.model_card). Files
    are 0644 and folders 0755 (readable by the group, whatever the temporary folder had). The
    model itself is not modified. Weights are written as float32 (F32 in the safetensors
    header) whatever dtype the model holds.

    With `shrink_ffn_neurons` (structured masks of whole FFN neurons, the same count per
    layer) the pruned neurons are sliced out: the checkpoint is the same model class with a
    smaller `intermediate_size`, fewer parameters, and the masked model's logits.
    """
    out_dir = Path(out_dir)
    num_labels = getattr(model.config, "num_labels", len(label_names))
    if len(label_names) != num_labels:
        raise ValueError(f"{len(label_names)} label names for a model with {num_labels} labels")
    state = plain_state_dict(model)
    for name, keep in (masks or {}).items():
        if name not in state:
            raise KeyError(f"mask for unknown parameter {name}")
        state[name] = state[name].masked_fill(~keep.to(state[name].device, torch.bool), 0.0)
    # fp32 whatever the model holds (a half-precision model would export half weights).
    state = {key: _fp32(value.detach().cpu()).contiguous() for key, value in state.items()}
    if shrink_ffn_neurons:
        model = shrink_ffn(model, state, masks or {})
        state = {key: _fp32(v.detach()).contiguous() for key, v in model.state_dict().items()}

    config = copy.deepcopy(model.config)
    config.dtype = torch.float32  # config.json's "dtype": what dtype="auto" loads
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    # The loaded base config may name the bare encoder (["BertModel"]); this is the head's.
    config.architectures = [type(model).__name__]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        config.save_pretrained(tmp)  # replaces the config written above: the task's labels
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        _readable_by_the_group(tmp)
        _replace_dir(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def write_card(folder: str | os.PathLike[str], card: str) -> Path:
    """README.md (the model card, srcore.model_card) into an exported folder, atomically and
    readable by the group like the rest of it; written last, once the card's measurements of
    the exported files are known."""
    path = Path(folder) / "README.md"
    atomic_write_bytes(path, card.encode("utf-8"))
    path.chmod(0o644)
    return path


def _fp32(tensor: Tensor) -> Tensor:
    """Floating-point tensors as float32; integer buffers (position ids) as they are."""
    return tensor.float() if tensor.is_floating_point() else tensor


def _readable_by_the_group(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def library_versions() -> dict[str, str]:
    """Versions recorded in metrics.json so a result can be traced to its software."""
    import platform

    import numpy
    import transformers

    import srcore

    return {
        "srnet": srcore.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
    }


def write_report(
    metrics: Mapping[str, Any], out_dir: str | os.PathLike[str], name: str = REPORT_FILE
) -> Path:
    """metrics.json (atomic). `metrics` must be JSON-serialisable; NaN is refused."""
    path = Path(out_dir) / name
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())
    return path


def _curves(
    points: Sequence[Mapping[str, Any]], metric: str
) -> dict[str, dict[float, list[float]]]:
    curves: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for point in points:
        sparsity = float(point["sparsity"])
        for set_name, values in point["metrics"].items():
            value = values.get(metric) if isinstance(values, Mapping) else None
            if isinstance(value, int | float) and math.isfinite(value):
                curves[set_name][sparsity].append(float(value))
    return curves


REPORT_COLLAPSE_LABEL = "collapsed: one class for ≥ 95% of the set (not robustness)"


def collapsed_points(
    points: Sequence[Mapping[str, Any]], metric: str
) -> list[tuple[str, float, float]]:
    """(set, sparsity, value) of every seed's point whose model collapsed on that set."""
    found = []
    for point in points:
        for set_name, values in point["metrics"].items():
            if not isinstance(values, Mapping) or not values.get("collapsed"):
                continue
            value = values.get(metric)
            if isinstance(value, int | float) and math.isfinite(value):
                found.append((set_name, float(point["sparsity"]), float(value)))
    return found


def plot_report(
    points: Sequence[Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    *,
    metric: str = "accuracy",
    title: str | None = None,
) -> Path:
    """PNG of `metric` against sparsity: one line (mean over seeds) per evaluation set, one dot
    per seed, a red cross on each seed's point whose model collapsed on that set. `points`:
    [{"sparsity": 0.5, "seed": 1, "metrics": {"mnli_dev": {"accuracy": …}, "hans": {…}}}, …];
    sets without `metric` are left out."""
    atomic_write_bytes(Path(out_path), png_bytes(report_figure(points, metric=metric, title=title)))
    return Path(out_path)


def report_figure(
    points: Sequence[Mapping[str, Any]], *, metric: str = "accuracy", title: str | None = None
) -> Figure:
    curves = _curves(points, metric)
    fig = new_figure(6.4, 4.2, dpi=120)
    ax = fig.add_subplot()
    for set_name in sorted(curves):
        by_sparsity = curves[set_name]
        xs = sorted(by_sparsity)
        means = [sum(by_sparsity[x]) / len(by_sparsity[x]) for x in xs]
        (line,) = ax.plot(xs, means, marker="o", label=set_name)
        seed_x = [x for x in xs for _ in by_sparsity[x]]
        seed_y = [v for x in xs for v in by_sparsity[x]]
        ax.scatter(seed_x, seed_y, s=12, alpha=0.4, color=line.get_color())
    collapsed = collapsed_points(points, metric)
    if collapsed:
        ax.scatter(
            [x for _, x, _ in collapsed], [y for _, _, y in collapsed], marker="x", s=60,
            color="#c0392b", linewidths=2.0, zorder=5, label=REPORT_COLLAPSE_LABEL,
        )  # fmt: skip
    ax.set_xlabel("sparsity (fraction of masked weights pruned)")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=GRID_ALPHA)
    fig.tight_layout()
    return fig

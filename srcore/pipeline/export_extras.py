"""What a unit's export adds beside its checkpoint (the job's `export` settings): its ONNX
model with the numbers recomputed by ONNX Runtime, and its size and latency measured against
the dense model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from srcore.evaluation import split_metrics
from srcore.export import export_checkpoint
from srcore.export_measure import measure_export
from srcore.export_onnx import ONNX_FILE, ONNX_INT8_FILE, export_onnx, onnx_session, predict_onnx
from srcore.jobspec.results import NOT_MEASURED, ExportMeasurement, OnnxResult
from srcore.pipeline.inputs import JobData


def export_onnx_unit(
    data: JobData,
    checkpoint_dir: Path,
    out_dir: Path,
    fmt: str,
    torch_metrics: Mapping[str, Mapping[str, Any]],
    batch_size: int,
) -> OnnxResult:
    """The checkpoint as one ONNX model of format `fmt` (fp32 or int8) in `out_dir`, and its
    metrics on every evaluation set of the job, recomputed by ONNX Runtime; the accuracy
    difference to the PyTorch numbers (`torch_metrics`) in points."""
    if fmt not in ("fp32", "int8"):
        raise ValueError(f"export.onnx: no ONNX format {fmt!r} (fp32 or int8)")
    exported = export_onnx(checkpoint_dir, out_dir, int8=fmt == "int8", overwrite=True)
    if fmt == "int8":  # one model per unit: the quantized one the job asked for
        exported.fp32.unlink()
    path = out_dir / (ONNX_INT8_FILE if fmt == "int8" else ONNX_FILE)
    session = onnx_session(path)
    metrics: dict[str, Any] = {}
    differences: dict[str, float | None] = {}
    for s in data.eval_sets:
        logits = predict_onnx(session, s.encoded, batch_size=batch_size)
        metrics[s.name] = split_metrics(
            logits, s.encoded, s.metric, data.labels, positive_label=s.positive_label
        )
        mine, theirs = metrics[s.name].get("accuracy"), (torch_metrics.get(s.name) or {})
        theirs = theirs.get("accuracy")
        differences[s.name] = (
            round(100 * (mine - theirs), 4)
            if isinstance(mine, int | float) and isinstance(theirs, int | float)
            else None
        )
    return OnnxResult(
        format=fmt,  # type: ignore[arg-type]
        folder=out_dir,
        file=path.name,
        heads_per_layer=exported.heads_per_layer,
        parameters=exported.parameters,
        bytes=path.stat().st_size,
        metrics=metrics,
        accuracy_difference=differences,
    )


def ensure_dense_reference(
    folder: Path, dense_model: Callable[[], nn.Module], labels: tuple[str, ...]
) -> Path:
    """The dense model exported once per job (unpruned, the architecture the units came
    from): what their size and latency are measured against."""
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        export_checkpoint(dense_model(), None, labels, folder, overwrite=True)
    return folder


def measure_unit(
    enabled: bool,
    checkpoint_dir: Path,
    reference: Callable[[], Path],
    onnx: OnnxResult | None,
) -> ExportMeasurement | str:
    """export.measure: the checkpoint against the dense reference, or NOT_MEASURED."""
    if not enabled:
        return NOT_MEASURED
    onnx_file = None if onnx is None else onnx.folder / onnx.file
    return measure_export(
        checkpoint_dir,
        reference(),
        onnx_file,
        onnx_parameters=None if onnx is None else onnx.parameters,
    )

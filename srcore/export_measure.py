"""An exported checkpoint measured against the dense model it came from, on this machine:
bytes on disk, parameters, and CPU latency at one small fixed shape (export.measure).

Kept cheap on purpose (a job measures every checkpoint it exports): one batch of random token
ids, one thread, one warm-up and a median of a few turns in which the models take turns, so
noise of a shared machine hits them alike. `bench/structured_speed.py` is the thorough version.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path

import torch

from srcore.jobspec.results import ExportMeasurement, LatencyMeasurement, ModelSize
from srcore.models import usable_positions
from srcore.training.device import torch_threads

BATCH = 32
LENGTH = 128
THREADS = 1
REPEATS = 3
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def safetensors_size(folder: str | os.PathLike[str]) -> ModelSize:
    """Bytes of the folder's *.safetensors files and the floating-point parameters they hold
    (read from the headers; integer buffers such as position ids are not parameters)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors file")
    parameters = 0
    for path in files:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, entry in header.items():
            if name != "__metadata__" and entry["dtype"] in _FLOAT_DTYPES:
                parameters += _product(entry["shape"])
    return ModelSize(bytes=sum(p.stat().st_size for p in files), parameters=parameters)


def _product(shape: list[int]) -> int:
    out = 1
    for n in shape:
        out *= int(n)
    return out


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the core count."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    return f"{name}, {os.cpu_count()} cores"


def _load(folder: Path) -> torch.nn.Module:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()


def _inputs(model: torch.nn.Module, batch: int, length: int) -> dict[str, torch.Tensor]:
    from srcore.export_onnx import model_input_names

    config = model.config
    length = min(length, usable_positions(config) or length)  # inside the position table
    generator = torch.Generator().manual_seed(0)
    vocab = int(config.vocab_size)
    ids = torch.randint(min(5, vocab - 1), vocab, (batch, length), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in model_input_names(model):
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def median_ms(forwards: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds per call of each function: one warm-up each, then `repeats` turns
    in which every function runs once."""
    for forward in forwards.values():
        forward()
    times: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(repeats):
        for name, forward in forwards.items():
            start = time.perf_counter()
            forward()
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in times.items()}


@torch.inference_mode()
def measure_export(
    checkpoint_dir: str | os.PathLike[str],
    dense_dir: str | os.PathLike[str],
    onnx_file: str | os.PathLike[str] | None = None,
    onnx_parameters: int | None = None,
    *,
    batch: int = BATCH,
    length: int = LENGTH,
    threads: int = THREADS,
    repeats: int = REPEATS,
) -> ExportMeasurement:
    """The checkpoint (and its ONNX model) against the dense checkpoint in `dense_dir`, both
    loaded with plain transformers as a user would."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (got {repeats})")
    checkpoint_dir, dense_dir = Path(checkpoint_dir), Path(dense_dir)
    size, dense_size = safetensors_size(checkpoint_dir), safetensors_size(dense_dir)
    model, dense = _load(checkpoint_dir), _load(dense_dir)
    inputs = _inputs(dense, batch, length)
    forwards: dict[str, Callable[[], object]] = {
        "dense": lambda: dense(**inputs),
        "model": lambda: model(**inputs),
    }
    onnx_size = None
    if onnx_file is not None:
        from srcore.export_onnx import onnx_logits, onnx_session

        session = onnx_session(onnx_file, threads=threads)
        forwards["onnx"] = lambda: onnx_logits(session, inputs)
        onnx_size = ModelSize(
            bytes=Path(onnx_file).stat().st_size,
            parameters=onnx_parameters if onnx_parameters is not None else size.parameters,
        )
    with torch_threads(threads):
        ms = median_ms(forwards, repeats)
    onnx_ms = ms.get("onnx")
    return ExportMeasurement(
        size=size,
        dense_size=dense_size,
        size_ratio=round(size.bytes / dense_size.bytes, 4),
        onnx_size=onnx_size,
        latency=LatencyMeasurement(
            batch=batch,
            length=int(inputs["input_ids"].shape[1]),
            threads=threads,
            repeats=repeats,
            cpu=cpu_name(),
            dense_ms=round(ms["dense"], 3),
            ms=round(ms["model"], 3),
            ratio=round(ms["model"] / ms["dense"], 4),
            onnx_ms=None if onnx_ms is None else round(onnx_ms, 3),
            onnx_ratio=None if onnx_ms is None else round(onnx_ms / ms["dense"], 4),
        ),
    )

"""CPU inference speed of exported checkpoints: dense, unstructured and structured pruning.

    .venv/bin/python bench/structured_speed.py [--sparsity 0.5] [--threads 1] [--repeats 5]

Each variant of the bundled all-MiniLM-L6-v2 (3 labels, weights as shipped) is pruned by
one-shot magnitude (per weight, per FFN neuron, per FFN neuron and head), exported with
`srcore.export.export_checkpoint` exactly as a job exports it, loaded back with plain
transformers, and timed under `torch.inference_mode` at batch 1 and 32 on HANS-length and
MNLI-length inputs (random token ids, no padding). Printed: parameters, model.safetensors size,
median latency per batch (the variants take turns, so noise of a shared machine hits
all alike), throughput, and each as a ratio to dense. Each variant is also exported with
`srcore.export_onnx.export_onnx` (pruned heads sliced out, as `srnet export-onnx` does) and
timed in ONNX Runtime as fp32 and as int8 (dynamic quantization), same inputs, same threads,
in the same turns; `--no-onnx` leaves those out. The MB column of an ONNX row is its .onnx file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from srcore.export import export_checkpoint
from srcore.export_onnx import export_onnx, onnx_logits, onnx_session
from srcore.models import resolve_model_path
from srcore.pruning import magnitude_masks, prunable_weights
from srcore.pruning.structured import structure_units, unit_magnitude_masks

LABELS = ("contradiction", "entailment", "neutral")
SHAPES = (("HANS-length", 32), ("MNLI-length", 128))  # tokens per pair
BATCHES = (1, 32)


def export_variant(name: str, sparsity: float, out: Path) -> Path:
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path("all-MiniLM-L6-v2"), num_labels=len(LABELS)
    ).eval()
    masks, shrink = None, False
    if name == "unstructured":
        masks = magnitude_masks(model, prunable_weights(model, False), sparsity)
    elif name in ("ffn_neurons", "ffn_neurons+heads"):
        masks = unit_magnitude_masks(model, structure_units(model, name), sparsity)
        shrink = True
    return export_checkpoint(
        model, None, LABELS, out / name.replace("+", "_"), masks=masks, shrink_ffn_neurons=shrink
    )


Forward = Callable[[dict[str, torch.Tensor]], object]


def torch_forward(model: nn.Module) -> Forward:
    return lambda inputs: model(**inputs)


def onnx_forward(path: Path, threads: int) -> Forward:
    session = onnx_session(path, threads=threads)
    return lambda inputs: onnx_logits(session, inputs)


@torch.inference_mode()
def latencies_s(models: dict[str, Forward], batch: int, length: int, repeats: int) -> dict:
    """Median seconds per forward of each model; the models take turns within each repeat,
    so a slow moment of a shared machine hits every variant alike."""
    ids = torch.randint(1000, 20000, (batch, length), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    times: dict[str, list[float]] = {name: [] for name in models}
    for forward in models.values():
        forward(inputs)  # warm-up
    for _ in range(repeats):
        for name, forward in models.items():
            t0 = time.perf_counter()
            forward(inputs)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-onnx", action="store_true", help="PyTorch variants only")
    parser.add_argument(
        "--json",
        type=Path,
        help="also write the figures here (read by "
        "scripts/make_results.py for the structured study's speed column)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    variants = ("dense", "unstructured", "ffn_neurons", "ffn_neurons+heads")
    print(f"all-MiniLM-L6-v2, sparsity {args.sparsity:g}, {args.threads} thread(s), "
          f"median of {args.repeats}, torch {torch.__version__}")  # fmt: skip
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models: dict[str, Forward] = {}
        for name in variants:
            folder = export_variant(name, args.sparsity, Path(tmp))
            model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            models[name] = torch_forward(model)
            params = sum(p.numel() for p in model.parameters())
            rows[name] = {
                "params": params,
                "mb": (folder / "model.safetensors").stat().st_size / 1e6,
            }
            if args.no_onnx:
                continue
            onnx = export_onnx(folder, folder.with_name(folder.name + "_onnx"), int8=True)
            for label, path in (("onnx fp32", onnx.fp32), ("onnx int8", onnx.int8)):
                assert path is not None
                models[f"{name} {label}"] = onnx_forward(path, args.threads)
                rows[f"{name} {label}"] = {
                    "params": onnx.parameters,
                    "mb": path.stat().st_size / 1e6,
                }
        for shape, length in SHAPES:
            for batch in BATCHES:
                for name, seconds in latencies_s(models, batch, length, args.repeats).items():
                    rows[name][f"{shape} b{batch}"] = seconds
    dense = rows["dense"]
    header = f"{'variant':<29} {'params':>11} {'MB':>7}"
    keys = [f"{shape} b{batch}" for shape, _ in SHAPES for batch in BATCHES]
    print(header + "".join(f" {k:>22}" for k in keys))
    for name, row in rows.items():
        cells = []
        for key in keys:
            batch = int(key.rsplit("b", 1)[1])
            ms, speedup = 1e3 * row[key], dense[key] / row[key]
            cells.append(f" {ms:8.1f} ms {batch / row[key]:6.0f}/s {speedup:4.2f}x")
        print(f"{name:<29} {row['params']:>11,} {row['mb']:>7.1f}" + "".join(cells))
    print("ratios: PyTorch dense latency / variant latency (>1 is faster)")
    if args.json:
        write_report(args, rows)


def write_report(args: argparse.Namespace, rows: dict[str, dict[str, float]]) -> None:
    """The figures of this run, with the machine and load they came from."""
    import json
    import platform

    cpu = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    dense = rows["dense"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "load_average": os.getloadavg()[0],
        "threads": args.threads,
        "repeats": args.repeats,
        "sparsity": args.sparsity,
        "torch": torch.__version__,
        "variants": {
            name: {
                **row,
                "speedup": {k: dense[k] / v for k, v in row.items() if k in dense and " b" in k},
            }
            for name, row in rows.items()
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

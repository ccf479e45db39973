"""ONNX export of a pruned checkpoint, for ONNX Runtime: pruned FFN neurons and heads are gone.

The checkpoint (`srcore.export.export_checkpoint`) already holds the FFNs shrunk to the kept
neurons; its pruned heads are zeroed, because a plain transformers 5 model cannot drop them.
Here, on the loaded model, every head whose attention-output columns are all zero is sliced out
of its query, key, value and output matrices before tracing, so the ONNX graph computes only
the kept heads. That is exact: such a head adds nothing to the layer's output.

Tracing uses torch's TorchScript exporter (`dynamo=False`): the dynamo exporter, torch 2.13's
default, needs `onnxscript`, which this project does not install. Optional: onnxruntime and
onnx (the `onnx` extra, `pip install 'srnet[onnx]'`); importing this module does not need them.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srcore.export import _readable_by_the_group, _replace_dir
from srcore.pruning.structured import head_units
from srcore.training.batching import collate
from srcore.training.encoding import EncodedSplit

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model_int8.onnx"
OPSET = 17
# What a HF sequence classifier may take, in the order the ONNX graph lists its inputs.
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Beside the .onnx files, so labels and the tokenizer travel with them.
_COPIED = (
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "vocab.json", "merges.txt", "README.md",
)  # fmt: skip


class OnnxUnavailableError(RuntimeError):
    """onnxruntime / onnx are not installed (the optional `onnx` extra)."""


def _require_onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailableError(
            "ONNX export needs onnxruntime and onnx: pip install 'srnet[onnx]'"
        ) from exc
    return onnxruntime


@torch.no_grad()
def drop_zeroed_heads(model: nn.Module) -> list[int]:
    """Slice every all-zero attention head out of `model` in place; the heads kept per layer.

    A head is dropped when its columns of the attention-output matrix are all exactly zero:
    whatever its query, key and value compute (a pruned head keeps its biases, so it attends
    uniformly to its value bias), it then adds nothing to the layer's output. A layer whose
    every head is zero is refused: it has no attention left to export.
    """
    kept_per_layer: list[int] = []
    for layer, group in enumerate(head_units(model)):
        rows = [model.get_submodule(name.removesuffix(".weight")) for name in group.rows]
        out = model.get_submodule(group.column.removesuffix(".weight"))
        w = group.width
        zero = out.weight.reshape(out.out_features, group.n_units, w).eq(0).all(2).all(0)
        keep_heads = (~zero).nonzero().squeeze(1)
        if len(keep_heads) == 0:
            raise ValueError(f"encoder layer {layer}: every attention head is pruned")
        kept_per_layer.append(len(keep_heads))
        if len(keep_heads) == group.n_units:
            continue
        index = (keep_heads[:, None] * w + torch.arange(w)).reshape(-1)
        for name, linear in zip(group.rows, rows, strict=True):
            _set_module(model, name.removesuffix(".weight"), _sliced(linear, index, dim=0))
        _set_module(model, group.column.removesuffix(".weight"), _sliced(out, index, dim=1))
        # The attention modules reshape with -1 heads; keep their counts truthful anyway.
        parent = model.get_submodule(group.rows[0].removesuffix(".weight").rpartition(".")[0])
        for attr in ("num_attention_heads", "n_heads", "num_heads"):
            if isinstance(getattr(parent, attr, None), int):
                setattr(parent, attr, len(keep_heads))
        if isinstance(getattr(parent, "all_head_size", None), int):
            parent.all_head_size = len(index)
    return kept_per_layer


def _sliced(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    weight = linear.weight.index_select(dim, index)
    small = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    small.weight.copy_(weight)
    if linear.bias is not None:
        small.bias.copy_(linear.bias if dim == 1 else linear.bias.index_select(0, index))
    return small


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


class _Logits(nn.Module):
    """The classifier as positional tensors → logits (what the exporter traces)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def model_input_names(model: nn.Module) -> tuple[str, ...]:
    """The inputs of `model.forward` among input_ids, attention_mask, token_type_ids."""
    accepted = inspect.signature(model.forward).parameters
    return tuple(name for name in _INPUT_NAMES if name in accepted)


@dataclass(frozen=True)
class OnnxExport:
    folder: Path
    fp32: Path
    int8: Path | None
    heads_per_layer: list[int]
    parameters: int  # of the traced model, pruned heads and neurons gone


def export_onnx(
    checkpoint_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    int8: bool = False,
    overwrite: bool = False,
) -> OnnxExport:
    """Write `out_dir`/model.onnx (fp32) of the checkpoint, zeroed heads sliced out; with
    `int8` also model_int8.onnx (ONNX Runtime dynamic quantization, int8 weights); and the
    checkpoint's config, tokenizer files and card beside them. Inputs are the model's own
    (input_ids, attention_mask and, where it takes them, token_type_ids), int64, with dynamic
    batch and sequence axes; the output is `logits` (batch, labels)."""
    _require_onnxruntime()
    from transformers import AutoModelForSequenceClassification

    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not (checkpoint_dir / "config.json").is_file():
        raise FileNotFoundError(f"{checkpoint_dir}: no config.json (not a checkpoint folder)")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists")
    # Eager attention traces to plain MatMul/Softmax nodes that every ONNX Runtime runs.
    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint_dir, attn_implementation="eager", dtype=torch.float32
    ).eval()
    heads = drop_zeroed_heads(model)
    names = model_input_names(model)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        # A padded row in the example: with an all-ones mask transformers may skip building
        # the attention mask, and the traced graph would then ignore padding.
        example = {
            "input_ids": torch.full((2, 8), 5, dtype=torch.long),
            "attention_mask": torch.tensor([[1] * 8, [1] * 5 + [0] * 3]),
            "token_type_ids": torch.zeros((2, 8), dtype=torch.long),
        }
        axes = {name: {0: "batch", 1: "sequence"} for name in names}
        torch.onnx.export(
            _Logits(model, names), tuple(example[n] for n in names), str(tmp / ONNX_FILE),
            dynamo=False, input_names=list(names), output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=OPSET,
            do_constant_folding=True,
        )  # fmt: skip
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(tmp / ONNX_FILE, tmp / ONNX_INT8_FILE, weight_type=QuantType.QInt8)
        for name in _COPIED:
            if (checkpoint_dir / name).is_file():
                shutil.copyfile(checkpoint_dir / name, tmp / name)
        _readable_by_the_group(tmp)
        _replace_dir(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return OnnxExport(
        folder=out_dir,
        fp32=out_dir / ONNX_FILE,
        int8=out_dir / ONNX_INT8_FILE if int8 else None,
        heads_per_layer=heads,
        parameters=sum(p.numel() for p in model.parameters()),
    )


def onnx_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session; `threads` intra-op threads (None: its default)."""
    ort = _require_onnxruntime()
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(session: Any, inputs: dict[str, torch.Tensor | np.ndarray]) -> np.ndarray:
    """Logits of one padded batch; the session's inputs are taken from `inputs` by name."""
    feed = {}
    for item in session.get_inputs():
        if item.name in inputs:
            value = inputs[item.name]
        elif item.name == "token_type_ids":  # the tokenizer makes none: the model's default
            value = np.zeros_like(np.asarray(inputs["input_ids"]))
        else:
            raise KeyError(f"the ONNX model needs input {item.name!r}; the batch has none")
        feed[item.name] = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value,
                                     dtype=np.int64)  # fmt: skip
    return session.run(["logits"], feed)[0].astype(np.float32)


def predict_onnx(
    session: Any,
    encoded: EncodedSplit,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Logits (N, C) in the split's order, as `srcore.evaluation.predict` makes them (longest
    first, each batch padded to its own longest pair), from an ONNX Runtime session."""
    order = np.argsort(-encoded.lengths, kind="stable")
    logits: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out = onnx_logits(session, collate(encoded, rows).inputs)
        if logits is None:
            logits = np.empty((len(encoded), out.shape[1]), dtype=np.float32)
        logits[rows] = out
        if progress is not None:
            progress(start + len(rows))
    if logits is None:
        raise ValueError(f"{encoded.name}: nothing to predict (empty split)")
    return logits


@torch.no_grad()
def max_logit_difference(
    checkpoint_dir: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    *,
    batch: int = 4,
    length: int = 48,
    seed: int = 0,
) -> float:
    """Largest |logit| difference between the checkpoint in plain transformers and the ONNX
    model, on random token ids with the last row half padding."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint_dir, dtype=torch.float32
    ).eval()
    vocab = int(model.config.vocab_size)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(min(5, vocab - 1), vocab, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, length // 2 :] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    expected = model(**inputs).logits.numpy()
    got = onnx_logits(onnx_session(onnx_path, threads=1), inputs)
    return float(np.abs(got - expected).max())

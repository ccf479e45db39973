"""`srnet export-onnx CHECKPOINT_DIR OUT`: an exported checkpoint as ONNX Runtime models."""

from __future__ import annotations

import argparse
import json

from srnet.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, _fail

# fp32 ONNX and PyTorch agree to float rounding (~1e-6 on MiniLM); more is a broken export.
MAX_FP32_LOGIT_DIFFERENCE = 1e-3


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from srcore.export_onnx import OnnxUnavailableError, export_onnx, max_logit_difference

    try:
        result = export_onnx(args.checkpoint, args.out, int8=args.int8, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, OnnxUnavailableError, ValueError) as exc:
        return _fail(f"export-onnx: {exc}", EXIT_BAD_INPUT)
    difference = max_logit_difference(args.checkpoint, result.fp32)
    files = [result.fp32, *([result.int8] if result.int8 else [])]
    summary = {
        "files": {str(p): p.stat().st_size for p in files},
        "heads_per_layer": result.heads_per_layer,
        "parameters": result.parameters,
        "max_logit_difference_fp32": difference,
    }
    print(json.dumps(summary, indent=1))
    if difference > MAX_FP32_LOGIT_DIFFERENCE:
        return _fail(
            f"export-onnx: the ONNX model's logits differ from the checkpoint's by "
            f"{difference:.3g} (> {MAX_FP32_LOGIT_DIFFERENCE:g})",
            EXIT_FAILED,
        )
    return EXIT_OK


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export-onnx",
        help="write an exported checkpoint as ONNX (pruned heads and FFN neurons removed)",
    )
    p.add_argument("checkpoint", help="checkpoint folder (a job's exported checkpoint)")
    p.add_argument("out", help="output folder: model.onnx, config and tokenizer files")
    p.add_argument("--int8", action="store_true", help="also model_int8.onnx (dynamic int8)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_export_onnx)
    return p

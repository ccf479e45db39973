"""Training: encoding, length-grouped batches, the `Trainer` loop and exact resume."""

from srcore.training.batching import Batch, LengthGroupedSampler, collate, padding_fraction
from srcore.training.device import (
    autocast,
    configure_cpu_threads,
    cpu_has_native_bf16,
    describe_precision,
    pick_device,
    precision_info,
    resolve_precision,
)
from srcore.training.encoding import EncodedSplit, encode_split
from srcore.training.trainer import (
    ResumeMismatchError,
    Trainer,
    TrainerConfig,
    TrainerHooks,
    TrainResult,
    debias_loss_fn,
    forward_logits,
)

__all__ = [
    "Batch",
    "EncodedSplit",
    "LengthGroupedSampler",
    "ResumeMismatchError",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainerHooks",
    "autocast",
    "collate",
    "configure_cpu_threads",
    "cpu_has_native_bf16",
    "debias_loss_fn",
    "describe_precision",
    "encode_split",
    "forward_logits",
    "padding_fraction",
    "pick_device",
    "precision_info",
    "resolve_precision",
]

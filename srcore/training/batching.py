"""Length-grouped batches and dynamic padding.

Examples of similar length share a batch, so a batch is padded only to its own longest
example. The order is a pure function of (seed, epoch): a run resumes from (epoch, batch
index) without saving the order itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from srcore.training.encoding import EncodedSplit


class LengthGroupedSampler:
    """Seeded batches of indices: shuffle, cut mega-batches of `mega_batch_mult` batches,
    sort each by length, split into batches, shuffle the batch order.

    The longest batch of an epoch goes first, so an out-of-memory error shows at once.
    `group_by_length=False` gives plain shuffled batches (the naive order).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        mega_batch_mult: int = 50,
        group_by_length: bool = True,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.mega_batch_mult = mega_batch_mult
        self.group_by_length = group_by_length
        self.drop_last = drop_last

    def __len__(self) -> int:
        n, b = len(self.lengths), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        if self.drop_last:
            order = order[: len(self) * self.batch_size]
        if not self.group_by_length:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        mega = self.batch_size * self.mega_batch_mult
        batches: list[np.ndarray] = []
        for start in range(0, len(order), mega):
            group = order[start : start + mega]
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            batches.extend(
                group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)
            )
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
        longest = max(range(len(batches)), key=lambda i: self.lengths[batches[i]].max())
        batches[0], batches[longest] = batches[longest], batches[0]
        return batches


@dataclass
class Batch:
    """Padded model inputs, gold labels and the gathered extras of a set of examples."""

    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask[, token_type_ids]
    labels: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    indices: np.ndarray | None = None  # rows of the split

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        return Batch(
            inputs={k: v.to(device, non_blocking=nb) for k, v in self.inputs.items()},
            labels=self.labels.to(device, non_blocking=nb),
            extras={k: v.to(device, non_blocking=nb) for k, v in self.extras.items()},
            indices=self.indices,
        )


def collate(
    encoded: EncodedSplit,
    indices: np.ndarray,
    pad_to_multiple_of: int | None = None,
    pad_to: int | None = None,
) -> Batch:
    """Pad the examples at `indices` to the longest of them (or to `pad_to`)."""
    indices = np.asarray(indices)
    starts = encoded.offsets[indices]
    lengths = encoded.offsets[indices + 1] - starts
    width = int(lengths.max()) if pad_to is None else pad_to
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = np.full((len(indices), width), encoded.pad_token_id, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    types = np.zeros((len(indices), width), dtype=np.int64)
    for row, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        ids[row, :length] = encoded.input_ids[start : start + length]
        mask[row, :length] = 1
        if encoded.token_type_ids is not None:
            types[row, :length] = encoded.token_type_ids[start : start + length]
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if encoded.token_type_ids is not None:
        inputs["token_type_ids"] = torch.from_numpy(types)
    extras = {
        k: torch.from_numpy(np.ascontiguousarray(v[indices], dtype=np.float32))
        for k, v in encoded.extras.items()
    }
    labels = torch.from_numpy(encoded.labels[indices])
    return Batch(inputs=inputs, labels=labels, extras=extras, indices=indices)


def padding_fraction(encoded: EncodedSplit, batches: list[np.ndarray]) -> float:
    """Share of the padded positions that are padding, over `batches`."""
    lengths = encoded.lengths
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    return 1.0 - real / padded

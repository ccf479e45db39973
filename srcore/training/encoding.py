"""Tokenised splits: `[CLS] a [SEP] b [SEP]` ids kept flat, unpadded, with per-example extras."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from srcore.data.examples import Split

_CHUNK = 4096  # examples per tokenizer call: bounds peak memory on the full MNLI


@dataclass(frozen=True)
class EncodedSplit:
    """A split after tokenisation, without padding.

    Example i's tokens are `input_ids[offsets[i]:offsets[i + 1]]` (same for `token_type_ids`).
    `extras` holds per-example arrays with N rows ("bias_probs" (N, C), "teacher_probs")
    that batches gather; `meta` holds per-example strings (HANS "heuristic").
    """

    name: str
    label_names: tuple[str, ...]
    uids: list[str]
    input_ids: np.ndarray  # (total_tokens,) int32
    token_type_ids: np.ndarray | None  # (total_tokens,) int8; None: the model takes none
    offsets: np.ndarray  # (N + 1,) int64
    labels: np.ndarray  # (N,) int64
    pad_token_id: int
    meta: dict[str, list[str]] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tokens(self, i: int) -> np.ndarray:
        return self.input_ids[self.offsets[i] : self.offsets[i + 1]]

    def with_extras(self, **arrays: np.ndarray) -> EncodedSplit:
        """A copy with more per-example arrays (rows in example order)."""
        for key, value in arrays.items():
            if len(value) != len(self):
                raise ValueError(f"extras[{key!r}] has {len(value)} rows, split has {len(self)}")
        return replace(self, extras={**self.extras, **arrays})


def encode_split(
    split: Split, tokenizer, max_length: int = 128, with_token_types: bool | None = None
) -> EncodedSplit:
    """Tokenise every pair with the fast tokenizer's batch call, truncating to `max_length`.

    `with_token_types=None` keeps token type ids when the tokenizer makes them (BERT does,
    RoBERTa and DistilBERT do not).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("encode_split needs a fast (Rust) tokenizer")
    if with_token_types is None:
        with_token_types = "token_type_ids" in tokenizer.model_input_names
    ids_parts: list[np.ndarray] = []
    type_parts: list[np.ndarray] = []
    lengths: list[int] = []
    examples = split.examples
    for start in range(0, len(examples), _CHUNK):
        chunk = examples[start : start + _CHUNK]
        enc = tokenizer(
            [e.text_a for e in chunk],
            [e.text_b for e in chunk],
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=with_token_types,
        )
        for i, ids in enumerate(enc["input_ids"]):
            ids_parts.append(np.asarray(ids, dtype=np.int32))
            lengths.append(len(ids))
            if with_token_types:
                type_parts.append(np.asarray(enc["token_type_ids"][i], dtype=np.int8))
    offsets = np.zeros(len(examples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    meta_keys = sorted({k for e in examples for k in e.meta})
    return EncodedSplit(
        name=split.name,
        label_names=tuple(split.label_names),
        uids=[e.uid for e in examples],
        input_ids=_concat(ids_parts, np.int32),
        token_type_ids=_concat(type_parts, np.int8) if with_token_types else None,
        offsets=offsets,
        labels=np.asarray([e.label for e in examples], dtype=np.int64),
        pad_token_id=int(tokenizer.pad_token_id),
        meta={k: [e.meta.get(k, "") for e in examples] for k in meta_keys},
    )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

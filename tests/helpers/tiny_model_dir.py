"""A tiny random BERT saved as a model directory, so a job spec can name it by path."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.tiny_bert import WORDS, tiny_bert, tiny_tokenizer

NLI_WORDS = (*WORDS, "not", "no", "never", "is", "are", "was", "were", "and", "of", "to", "in")


def save_tiny_model(directory: Path, num_labels: int = 3, seed: int = 0) -> Path:
    """Write config, weights and a fast tokenizer; `from_pretrained(directory)` loads it."""
    tokenizer = tiny_tokenizer(NLI_WORDS)
    model = tiny_bert(tokenizer, num_labels=num_labels, seed=seed, dropout=0.0)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory

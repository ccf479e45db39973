"""A tiny random BERT saved as a model directory, so a job spec can name it by path; and the
`tiny_model` fixture the pipeline tests share (a test package's conftest imports it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers.tiny_bert import WORDS, tiny_bert, tiny_tokenizer

NLI_WORDS = (*WORDS, "not", "no", "never", "is", "are", "was", "were", "and", "of", "to", "in")


def save_tiny_model(
    directory: Path,
    num_labels: int = 3,
    seed: int = 0,
    *,
    words: Sequence[str] = NLI_WORDS,
    dropout: float = 0.0,
) -> Path:
    """Write config, weights and a fast tokenizer; `from_pretrained(directory)` loads it."""
    tokenizer = tiny_tokenizer(words)
    model = tiny_bert(tokenizer, num_labels=num_labels, seed=seed, dropout=dropout)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_roberta(directory: Path, *, words: Sequence[str] = NLI_WORDS) -> Path:
    """A RoBERTa-class model directory (2 layers, 2 heads, intermediate 48; the WordPiece
    test tokenizer, two token types), loadable with `from_pretrained(directory)`."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tokenizer = tiny_tokenizer(words)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, num_labels=3, pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    RobertaForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The path of a tiny 3-label BERT directory, one per test module."""
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))

"""Tiny random BERT classifiers and a WordPiece tokenizer built in-process, for fast tests.

tokenizer = tiny_tokenizer(["the", "cat", "sat"])
model = tiny_bert(tokenizer, num_labels=3, seed=0)
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from srcore.data.examples import Example, Split

# Tiny models run on one thread (`with torch_threads(1)`): on a busy shared CPU, several OpenMP
# threads wait on each other far longer than a tiny matmul takes (50x slower measured on 2
# shared cores). The tests import it from here.
from srcore.training.device import torch_threads  # noqa: F401

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_tokenizer(words: Iterable[str], lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A BERT-style fast tokenizer whose vocabulary is the special tokens, every letter and
    digit (also as `##` continuations, so unseen words still split) and `words`."""
    vocab: dict[str, int] = {}
    pieces = [*SPECIAL_TOKENS]
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
    if not lowercase:
        chars += "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pieces += list(chars) + [f"##{c}" for c in chars]
    pieces += [w.lower() if lowercase else w for w in words]
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def tiny_bert_config(
    vocab_size: int,
    num_labels: int = 3,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 128,
    dropout: float = 0.1,
    label_names: Iterable[str] | None = None,
    **extra,
) -> BertConfig:
    """A small BertConfig; `extra` goes to BertConfig as is (e.g. initializer_range)."""
    labels = list(label_names) if label_names is not None else [str(i) for i in range(num_labels)]
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        **extra,
    )


def tiny_bert(
    tokenizer: PreTrainedTokenizerFast, num_labels: int = 3, seed: int = 0, **config_kw
) -> BertForSequenceClassification:
    """A randomly initialised BertForSequenceClassification sized for `tokenizer`."""
    config = tiny_bert_config(len(tokenizer), num_labels=num_labels, **config_kw)
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


_WORD_TEXT = """the a cat dog bird man woman child sat ran saw ate big small red blue old new
house park tree car book table river city road happy sad quick slow"""
WORDS = tuple(_WORD_TEXT.split())


@functools.cache
def word_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer of WORDS: its vocabulary is over 100, so tests may draw ids below 100."""
    return tiny_tokenizer(WORDS)


def eval_tiny_bert(seed: int = 0, num_labels: int = 3) -> BertForSequenceClassification:
    """A tiny random BERT (hidden 32, 2 layers, 2 heads, intermediate 64) in eval mode."""
    return tiny_bert(word_tokenizer(), num_labels=num_labels, seed=seed).eval()


def random_pair_split(
    n: int,
    num_labels: int = 3,
    seed: int = 0,
    words: Sequence[str] = WORDS,
    max_words: int = 12,
    name: str = "random",
) -> Split:
    """`n` random sentence pairs of 1..max_words words with random labels (uids "r<i>")."""
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, max_words)))

    examples = [
        Example(uid=f"r{i}", text_a=sentence(), text_b=sentence(), label=rng.randrange(num_labels))
        for i in range(n)
    ]
    labels = tuple(str(i) for i in range(num_labels))
    return Split(name=name, examples=examples, label_names=labels, origin="random")

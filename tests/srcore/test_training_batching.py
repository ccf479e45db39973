import numpy as np
import pytest
import torch

from srcore.data.examples import Example, Split
from srcore.data.loaders import load_split
from srcore.jobspec.spec import SourceSpec
from srcore.training import LengthGroupedSampler, collate, encode_split, padding_fraction
from tests.helpers.tiny_bert import random_pair_split, tiny_tokenizer

MNLI_LABELS = ("contradiction", "entailment", "neutral")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(["the", "cat", "sat", "on", "mat", "dog", "ran"])


def test_encode_pair_layout_and_types(tokenizer):
    split = Split(
        "s",
        [
            Example("u1", "the cat sat", "the dog", 1, meta={"heuristic": "subsequence"}),
            Example("u2", "dog", "cat ran on the mat", 0),
        ],
        ("a", "b"),
        "test",
    )
    enc = encode_split(split, tokenizer, max_length=32)
    vocab = tokenizer.get_vocab()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    first = [cls, vocab["the"], vocab["cat"], vocab["sat"], sep, vocab["the"], vocab["dog"], sep]
    assert enc.tokens(0).tolist() == first
    assert enc.lengths.tolist() == [8, 9]
    assert enc.token_type_ids[:8].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert enc.labels.tolist() == [1, 0]
    assert enc.uids == ["u1", "u2"]
    assert enc.meta == {"heuristic": ["subsequence", ""]}
    assert enc.pad_token_id == vocab["[PAD]"]


def test_encode_truncates_to_max_length(tokenizer):
    long = " ".join(["cat"] * 100)
    split = Split("s", [Example("u", long, long, 0)], ("a",), "test")
    enc = encode_split(split, tokenizer, max_length=16)
    assert enc.lengths.tolist() == [16]
    assert enc.tokens(0)[-1] == tokenizer.sep_token_id


def test_with_extras_checks_rows(tokenizer):
    enc = encode_split(random_pair_split(5), tokenizer, max_length=32)
    assert enc.with_extras(bias_probs=np.full((5, 3), 1 / 3)).extras["bias_probs"].shape == (5, 3)
    with pytest.raises(ValueError, match="4 rows"):
        enc.with_extras(bias_probs=np.zeros((4, 3)))


def test_sampler_covers_every_example_once_and_is_seeded():
    lengths = np.random.default_rng(0).integers(5, 120, size=1003)
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=3, mega_batch_mult=10)
    batches = sampler.epoch(0)
    assert len(batches) == len(sampler) == 63
    assert sorted(np.concatenate(batches).tolist()) == list(range(1003))
    same = LengthGroupedSampler(lengths, 16, seed=3, mega_batch_mult=10).epoch(0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, same, strict=True))
    other_epoch = sampler.epoch(1)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other_epoch, strict=True))
    # the longest example of the epoch is in the first batch
    assert lengths[batches[0]].max() == lengths.max()


def test_sampler_drop_last_and_naive_order():
    lengths = np.arange(50)
    assert len(LengthGroupedSampler(lengths, 16, drop_last=True).epoch(0)) == 3
    naive = LengthGroupedSampler(lengths, 16, group_by_length=False).epoch(0)
    assert [len(b) for b in naive] == [16, 16, 16, 2]


def test_length_grouping_cuts_padding_on_real_mnli():
    from transformers import AutoTokenizer

    from srcore.models import resolve_model_path

    source = SourceSpec(format="pair_json", path="sample:mnli/train.json")
    split = load_split(source, MNLI_LABELS, "train", max_examples=3200, seed=0)
    tok = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    enc = encode_split(split, tok, max_length=128)
    grouped = LengthGroupedSampler(enc.lengths, 32, seed=0).epoch(0)
    shuffled = LengthGroupedSampler(enc.lengths, 32, seed=0, group_by_length=False).epoch(0)
    fixed = 1.0 - enc.lengths.sum() / (128 * len(enc))
    assert fixed > 0.6  # real pairs are short
    assert padding_fraction(enc, shuffled) > 0.4  # dynamic padding alone still pads a lot
    assert padding_fraction(enc, grouped) < 0.05


def test_collate_pads_to_the_longest_and_gathers_extras(tokenizer):
    enc = encode_split(random_pair_split(10, seed=1), tokenizer, max_length=64)
    enc = enc.with_extras(bias_probs=np.arange(30, dtype=np.float64).reshape(10, 3))
    rows = np.array([4, 7, 2])
    batch = collate(enc, rows)
    width = int(enc.lengths[rows].max())
    assert batch.inputs["input_ids"].shape == (3, width)
    assert batch.inputs["attention_mask"].sum(1).tolist() == enc.lengths[rows].tolist()
    ids = batch.inputs["input_ids"]
    assert (ids[batch.inputs["attention_mask"] == 0] == enc.pad_token_id).all()
    assert ids[1, : enc.lengths[7]].tolist() == enc.tokens(7).tolist()
    assert batch.labels.tolist() == enc.labels[rows].tolist()
    assert batch.extras["bias_probs"].dtype == torch.float32
    assert batch.extras["bias_probs"][:, 0].tolist() == [12.0, 21.0, 6.0]
    assert collate(enc, rows, pad_to_multiple_of=8).inputs["input_ids"].shape[1] % 8 == 0

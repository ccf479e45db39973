import json
from pathlib import Path

import numpy as np
import pytest

from srcore.bias import (
    BiasCache,
    BiasFit,
    BiasResult,
    bias_probabilities,
    cache_key_parts,
    training_digest,
)
from srcore.bias.cache import cache_key
from srcore.data.examples import Example, Split

LABELS = ("contradiction", "entailment", "neutral")


def _split(texts: list[str] | None = None) -> Split:
    texts = texts or [f"the cat sat {i}" for i in range(30)]
    examples = [
        Example(str(i), t, t.split()[i % 3] + (" dog" if i % 2 else ""), i % 3)
        for i, t in enumerate(texts)
    ]
    return Split("train", examples, LABELS, "memory")


class Counting:
    """A compute function that records how often it ran."""

    def __init__(self, split: Split, seed: int = 0) -> None:
        self.split, self.seed, self.calls = split, seed, 0

    def __call__(self) -> BiasResult:
        self.calls += 1
        return bias_probabilities("overlap", self.split, LABELS, BiasFit(seed=self.seed))


def test_second_call_is_a_hit_without_refit(tmp_path):
    cache, split = BiasCache(tmp_path), _split()
    compute = Counting(split)
    parts = cache_key_parts("overlap", split, LABELS, BiasFit(seed=0, folds=5))
    first, hit1 = cache.get_or_compute(parts, compute)
    # a fresh cache object on the same folder: what a second job sees
    second, hit2 = BiasCache(tmp_path).get_or_compute(parts, compute)
    assert (hit1, hit2, compute.calls) == (False, True, 1)
    np.testing.assert_array_equal(first.probs, second.probs)
    assert second.probs.dtype == np.float32
    assert second.report == json.loads(json.dumps(first.report))
    key = cache_key(parts)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        f"{key}.json",
        f"{key}.npy",
    ]


def test_any_change_in_inputs_is_a_miss(tmp_path):
    cache, split = BiasCache(tmp_path), _split()
    compute = Counting(split)
    cache.get_or_compute(cache_key_parts("overlap", split, LABELS, BiasFit(seed=0)), compute)
    changed = _split([f"the cat sat {i}" for i in range(29)] + ["a different premise"])
    for parts in (
        cache_key_parts("overlap", split, LABELS, BiasFit(seed=1)),
        cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0)),
        cache_key_parts("overlap", changed, LABELS, BiasFit(seed=0)),
        cache_key_parts("overlap", split, LABELS, BiasFit(seed=0, negation=True)),
    ):
        _, hit = cache.get_or_compute(parts, compute)
        assert not hit
    assert compute.calls == 5


def test_training_digest_sees_texts_ids_and_labels():
    split = _split()
    base = training_digest(split)
    assert base == training_digest(_split())
    first = split.examples[0]
    variants = [
        Example("x", first.text_a, first.text_b, first.label),
        Example(first.uid, first.text_a + " ", first.text_b, first.label),
        Example(first.uid, first.text_a, first.text_b + "!", first.label),
        Example(first.uid, first.text_a, first.text_b, 1),
    ]
    for ex in variants:
        other = Split("train", [ex, *split.examples[1:]], LABELS, "memory")
        assert training_digest(other) != base
    # field boundaries matter: ("ab", "c") is not ("a", "bc")
    a = Split("t", [Example("1", "ab", "c", 0)], LABELS, "m")
    b = Split("t", [Example("1", "a", "bc", 0)], LABELS, "m")
    assert training_digest(a) != training_digest(b)


def test_corrupt_entry_is_recomputed(tmp_path):
    cache, split = BiasCache(tmp_path), _split()
    compute = Counting(split)
    parts = cache_key_parts("overlap", split, LABELS, BiasFit(seed=0))
    good, _ = cache.get_or_compute(parts, compute)
    npy = tmp_path / f"{cache_key(parts)}.npy"
    npy.write_bytes(npy.read_bytes()[:-8])  # torn write
    again, hit = cache.get_or_compute(parts, compute)
    assert not hit and compute.calls == 2
    np.testing.assert_array_equal(again.probs, good.probs)
    _, hit = cache.get_or_compute(parts, compute)
    assert hit and compute.calls == 2


def test_failed_compute_stores_nothing(tmp_path):
    cache, split = BiasCache(tmp_path), _split()
    parts = cache_key_parts("overlap", split, LABELS, BiasFit(seed=0))

    def broken() -> BiasResult:
        raise RuntimeError("fit failed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute(parts, broken)
    assert not [p for p in Path(tmp_path).iterdir() if p.suffix in (".npy", ".json")]
    compute = Counting(split)
    _, hit = cache.get_or_compute(parts, compute)
    assert not hit and compute.calls == 1


def test_fit_class_weight_and_hans_sets_are_in_the_key():
    split = _split()
    hans = Split(
        "hans",
        [Example("h0", "the cat sat", "the cat", 0), Example("h1", "a dog ran", "dog", 1)],
        ("entailment", "non-entailment"),
        "memory",
    )
    base = cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0))
    # the defaults are today's model: spelling them out is the same entry
    explicit = cache_key_parts(
        "overlap_2way",
        split,
        LABELS,
        BiasFit(seed=0, fit="out_of_fold", class_weight="none"),
        hans={},
    )
    assert cache_key(base) == cache_key(explicit)
    assert (base["fit"], base["class_weight"], base["hans"]) == ("out_of_fold", "none", {})
    variants = [
        cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0, fit="in_sample")),
        cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0, class_weight="balanced")),
        cache_key_parts(
            "overlap_2way", split, LABELS, BiasFit(seed=0, fit="in_sample", class_weight="balanced")
        ),
        cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0), hans={"hans": hans}),
        cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0), hans={"hans_2": hans}),
    ]
    keys = {cache_key(p) for p in [base, *variants]}
    assert len(keys) == 1 + len(variants)


def test_options_reach_the_cached_report(tmp_path):
    cache, split = BiasCache(tmp_path), _split()
    parts = cache_key_parts(
        "overlap", split, LABELS, BiasFit(seed=0, fit="in_sample", class_weight="balanced")
    )
    _, hit = cache.get_or_compute(
        parts,
        lambda: bias_probabilities(
            "overlap", split, LABELS, BiasFit(seed=0, fit="in_sample", class_weight="balanced")
        ),
    )
    again, hit2 = BiasCache(tmp_path).get_or_compute(parts, lambda: pytest.fail("refit"))
    assert (hit, hit2) == (False, True)
    assert again.report["fit"] == "in_sample" and again.report["class_weight"] == "balanced"

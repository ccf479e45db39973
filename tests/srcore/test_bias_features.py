import math

import numpy as np
import pytest

from srcore.bias.features import (
    OVERLAP_FEATURES,
    feature_names,
    overlap_features,
    pair_features,
    tokenize,
)


def test_tokenize_lowercases_and_keeps_clitics():
    assert tokenize("Don’t STOP, the doctor's car!") == ["don't", "stop", "the", "doctor's", "car"]


def test_copied_hypothesis_is_a_subsequence():
    row = pair_features("The doctor saw the lawyer.", "the doctor saw the lawyer")
    assert row == [1.0, 1.0, 1.0, 0.0]


def test_contiguous_span_of_longer_premise():
    row = pair_features("Yesterday the doctor saw the lawyer at noon", "the doctor saw")
    assert row[:3] == [1.0, 1.0, 1.0]
    assert row[3] == pytest.approx(math.log(9) - math.log(4))


def test_same_words_other_order_is_not_a_subsequence():
    # The HANS "lexical overlap" case: every word is in the premise, not as a run.
    row = pair_features("The lawyer saw the doctor", "The doctor saw the lawyer")
    assert row == [0.0, 1.0, 1.0, 0.0]


def test_partial_overlap_share_and_length():
    row = pair_features("A man is sleeping", "A woman is sleeping now")
    assert row[:3] == [0.0, 0.0, pytest.approx(3 / 5)]
    assert row[3] == pytest.approx(math.log(5) - math.log(6))


def test_share_counts_repeated_words():
    assert pair_features("the dog", "the the cat")[2] == pytest.approx(2 / 3)


def test_words_match_whole_tokens_only():
    # "cat" is inside "cats" as characters, not as a word.
    assert pair_features("the cats sat", "cat sat")[:3] == [0.0, 0.0, 0.5]


def test_empty_hypothesis_has_no_overlap_evidence():
    assert pair_features("two words", "...") == [0.0, 0.0, 0.0, pytest.approx(math.log(3))]


def test_negation_feature_is_optional():
    assert len(pair_features("He went home", "He didn't go home")) == 4
    assert pair_features("He went home", "He didn't go home", negation=True)[4] == 1.0
    assert pair_features("He went home", "He never went", negation=True)[4] == 1.0
    assert pair_features("He did not go", "He went home", negation=True)[4] == 0.0
    assert feature_names(True) == (*OVERLAP_FEATURES, "hyp_has_negation")


def test_matrix_shape_and_rows():
    pairs = [("a b c", "a b"), ("a b c", "d")]
    x = overlap_features(pairs)
    assert x.shape == (2, 4) and x.dtype == np.float64
    np.testing.assert_allclose(x[1], [0.0, 0.0, 0.0, math.log(4) - math.log(2)])
    assert overlap_features([]).shape == (0, 4)
    assert overlap_features([], negation=True).shape == (0, 5)


def test_many_pairs_in_one_call():
    # The speed (≈ 13 µs a pair) is a benchmark's business, not a test's: here only the shape.
    premise = "The new rights are nice enough, but the old ones were better for everyone here."
    pairs = [(premise, f"The new rights {i} are better than the old ones.") for i in range(5000)]
    features = overlap_features(pairs)
    assert features.shape[0] == 5000
    assert (features == features[0]).all()  # the number token is the only difference

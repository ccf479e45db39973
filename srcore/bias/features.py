"""Lexical-overlap features of a sentence pair (premise `text_a`, hypothesis `text_b`).

These are the hand-crafted cues an NLI/paraphrase model can shortcut on (McCoy et al. 2019,
Clark et al. 2019): a hypothesis made of the premise's own words is usually labelled
entailment / duplicate in the training data, whatever the words actually say.

Tokenisation is deliberately simple (lowercase, word regex): the features only need to see
the same surface cue a model sees, and the bias model must be cheap on 400k pairs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

# A word, keeping an English clitic attached ("don't", "premise's") so that "n't" stays
# visible to the negation feature.
_WORD = re.compile(r"\w+(?:'\w+)?")

OVERLAP_FEATURES: tuple[str, ...] = (
    "hyp_is_subsequence",  # 1 if the hypothesis words occur contiguously, in order, in the premise
    "hyp_all_in_premise",  # 1 if every hypothesis word occurs somewhere in the premise
    "hyp_share_in_premise",  # share of hypothesis tokens (with repeats) found in the premise
    "log_len_diff",  # log(1 + premise tokens) - log(1 + hypothesis tokens)
)
# Optional: a negation word in the hypothesis is a known MNLI contradiction cue
# (Gururangan et al. 2018). Off by default: science.md's bias model uses the four above.
NEGATION_FEATURE = "hyp_has_negation"
NEGATION_WORDS = frozenset(
    {"not", "no", "never", "nothing", "nobody", "none", "nowhere", "neither", "nor", "cannot"}
)


def tokenize(text: str) -> list[str]:
    """Lowercased words; typographic apostrophes are folded so "don’t" == "don't"."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def feature_names(negation: bool = False) -> tuple[str, ...]:
    return (*OVERLAP_FEATURES, NEGATION_FEATURE) if negation else OVERLAP_FEATURES


def pair_features(text_a: str, text_b: str, negation: bool = False) -> list[float]:
    """Features of one pair, in `feature_names(negation)` order.

    An empty hypothesis has no overlap evidence: its overlap features are 0 (not the
    vacuous 1 of "all of no words are in the premise"), so it cannot look like a shortcut.
    """
    premise = tokenize(text_a)
    hypothesis = tokenize(text_b)
    log_len_diff = math.log1p(len(premise)) - math.log1p(len(hypothesis))
    if hypothesis:
        premise_words = set(premise)
        found = sum(1 for w in hypothesis if w in premise_words)
        share = found / len(hypothesis)
        all_in = float(found == len(hypothesis))
        # Tokens never contain a space, so a padded substring test is an exact contiguous
        # token-sequence test, and runs in C.
        hyp_run = f" {' '.join(hypothesis)} "
        subsequence = float(all_in == 1.0 and hyp_run in f" {' '.join(premise)} ")
    else:
        share = all_in = subsequence = 0.0
    row = [subsequence, all_in, share, log_len_diff]
    if negation:
        row.append(float(any(w in NEGATION_WORDS or w.endswith("n't") for w in hypothesis)))
    return row


def overlap_features(pairs: Iterable[tuple[str, str]], negation: bool = False) -> np.ndarray:
    """(N, F) float64 feature matrix of (premise, hypothesis) pairs."""
    rows = [pair_features(a, b, negation) for a, b in pairs]
    if not rows:
        return np.zeros((0, len(feature_names(negation))), dtype=np.float64)
    return np.asarray(rows, dtype=np.float64)

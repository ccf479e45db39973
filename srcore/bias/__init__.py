"""Bias models and bias/teacher probability files (science.md, "Bias models").

- `bias_probabilities(kind, train, labels, BiasFit(seed=, fit=, class_weight=), hans=)`: the
  task's own bias model (lexical overlap LR, 2-way for MNLI; claim-only for FEVER), out-of-fold
  (or in-sample) on the training set, optionally class-balanced; `hans` sets are scored by the
  model fitted on all training rows, for the report. `BiasFit` is the one settings object
  every bias model reads.
- `load_probability_file(path, train, labels)`: a validated user file.
- `BiasCache`: content-addressed reuse across jobs.

Torch-free (numpy + scikit-learn).
"""

from srcore.bias.cache import BIAS_CODE_VERSION, BiasCache, cache_key_parts, training_digest
from srcore.bias.features import feature_names, overlap_features, pair_features, tokenize
from srcore.bias.files import BiasFileError, load_probability_file
from srcore.bias.probabilities import BIAS_MODEL_KINDS, bias_probabilities
from srcore.bias.result import BiasResult
from srcore.bias.settings import BiasFit

__all__ = [
    "BIAS_CODE_VERSION",
    "BIAS_MODEL_KINDS",
    "BiasCache",
    "BiasFileError",
    "BiasFit",
    "BiasResult",
    "bias_probabilities",
    "cache_key_parts",
    "feature_names",
    "load_probability_file",
    "overlap_features",
    "pair_features",
    "tokenize",
    "training_digest",
]

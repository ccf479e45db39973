"""A local model whose classifier does not fit the task's labels fails at once, naming both
label counts, as an input error (srcore.models.ModelNotFoundError: the worker does not retry)."""

from __future__ import annotations

import pytest

from srcore.models import ModelNotFoundError
from srcore.pipeline.inputs import load_model
from tests.helpers.tiny_model_dir import save_tiny_model


def test_a_classifier_of_another_size_names_both_label_counts(tmp_path):
    model_dir = save_tiny_model(tmp_path / "three-way", num_labels=3)
    with pytest.raises(ModelNotFoundError) as info:
        load_model(str(model_dir), ("duplicate", "not_duplicate"), seed=1)
    message = str(info.value)
    assert message.startswith("model.name_or_path: ")
    assert "3 labels" in message and "2 labels" in message, message


def test_a_classifier_of_the_right_size_loads(tmp_path):
    model_dir = save_tiny_model(tmp_path / "three-way", num_labels=3)
    model = load_model(str(model_dir), ("contradiction", "entailment", "neutral"), seed=1)
    assert model.config.num_labels == 3

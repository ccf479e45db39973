"""training.max_length beyond what the model's position table holds fails before any data is
loaded, naming the field and the limit (srcore.models.ModelInputError, an input error the worker
does not retry): it used to be an IndexError in the embedding lookup, retried three times."""

from __future__ import annotations

import pytest

from srcore.jobspec.spec import JobSpec
from srcore.models import ModelInputError, check_max_length, usable_positions
from srcore.pipeline.inputs import load_job_data
from tests.helpers.tiny_model_dir import save_tiny_model, save_tiny_roberta
from worker.tasks import input_errors


def spec(model_dir, max_length: int) -> JobSpec:
    return JobSpec.model_validate({
        "task": "mnli", "model": {"name_or_path": str(model_dir)},
        "data": {"max_train_examples": 16, "max_eval_examples": 16},
        "training": {"max_length": max_length},
    })  # fmt: skip


def test_roberta_positions_start_after_the_padding_index(tmp_path):
    roberta = save_tiny_roberta(tmp_path / "roberta")  # 64 positions, pad_token_id 0
    from transformers import AutoConfig

    assert usable_positions(AutoConfig.from_pretrained(roberta)) == 63
    with pytest.raises(ModelInputError) as info:
        load_job_data(spec(roberta, 64))
    message = str(info.value)
    assert message.startswith("training.max_length: 64 tokens")
    assert "(63: max_position_embeddings 64 less the position offset 1)" in message
    assert "set training.max_length to 63 or less" in message
    check_max_length(str(roberta), None, 63)  # at the limit: accepted


def test_bert_takes_its_whole_position_table(tmp_path):
    bert = save_tiny_model(tmp_path / "bert")
    from transformers import AutoConfig

    table = AutoConfig.from_pretrained(bert).max_position_embeddings
    check_max_length(str(bert), None, table)
    with pytest.raises(ModelInputError, match=rf"\({table}: max_position_embeddings {table}\)"):
        check_max_length(str(bert), None, table + 1)


def test_the_worker_does_not_retry_it():
    assert ModelInputError in input_errors()

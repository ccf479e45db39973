"""The model card of an exported checkpoint (torch-free) and the hub push's offline errors."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from srcore.model_card import CardFacts, model_card
from srnet.hub_push import HubPushError, push_checkpoint


def facts(**kw) -> CardFacts:
    base = dict(
        task="mnli", labels=["contradiction", "entailment", "neutral"],
        base_model="all-MiniLM-L6-v2",
        train_source={"format": "pair_json", "path": "sample:mnli/train.json"},
        loss="poe", method="mask_training", scenario="finetuned", seed=3, target_sparsity=0.7,
        sparsity={"pruned_weights": 70, "masked_weights": 100, "model_parameters": 400,
                  "sparsity_over_masked_weights": 0.7, "sparsity_over_all_parameters": 0.175},
        metrics={"dev": {"accuracy": 0.8125, "n": 9815}, "hans": {"accuracy": 0.6, "n": 30000}},
        id_set="dev", selected_step=1200, versions={"torch": "2.13.0", "transformers": "4.x"},
        spec_hash="0123abcd", name="MNLI · PoE · 70%",
    )  # fmt: skip
    return CardFacts(**{**base, **kw})


def test_the_card_says_what_the_job_did_and_round_trips_through_huggingface_hub(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(str(model_card(facts())))
    card = ModelCard.load(path)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.library_name == "transformers"
    assert {"srnet", "mnli", "poe", "mask_training"} <= set(card.data.tags)
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("dev (ID)", "accuracy"): 0.8125, ("hans (OOD)", "accuracy"): 0.6}
    text = card.text
    assert "70.00 % of the 100 prunable weights are zero (70 of 100" in text
    assert "17.50 % of all 400 parameters" in text
    assert "| dev | ID | 81.25 |" in text and "| hans | OOD | 60.00 |" in text
    assert "| seed | 3 |" in text and "`poe`: product of experts" in text
    assert "`finetuned`" in text and "torch 2.13.0" in text
    assert "AutoModelForSequenceClassification.from_pretrained" in text
    assert "Liu, Yuanxin" in text and "NeurIPS" in text and "A Win-win Deal" in text


def test_a_local_base_model_is_not_named_as_a_hub_model():
    card = model_card(facts(base_model="/srv/models/bert"))
    assert card.data.base_model is None


def test_push_fails_at_once_offline_or_without_a_token(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with pytest.raises(HubPushError, match="not a checkpoint"):
        push_checkpoint(folder, "lab/x", token="t")
    config = {"architectures": ["BertForSequenceClassification"]}
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE"):
        push_checkpoint(folder, "lab/x", token="t")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login
    with pytest.raises(HubPushError, match="no Hugging Face token"):
        push_checkpoint(folder, "lab/x")
    # A token but no network (nothing outside this machine answers): a clear error, no hang.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubPushError, match=r"could not be reached|refused"):
        push_checkpoint(folder, "lab/x", token="hf_test")

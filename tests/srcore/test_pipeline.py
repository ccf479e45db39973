"""The whole pipeline on a tiny random BERT and real sample rows: artifacts, selection,
exact sparsity, reproducible exports, stage reuse, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from srcore.evaluation import make_evaluate_fn
from srcore.jobspec.callbacks import Cancelled
from srcore.jobspec.results import CurveId, SearchResult
from srcore.jobspec.spec import JobSpec
from srcore.pipeline import run_search
from srcore.pipeline.inputs import load_job_data
from srcore.pruning import load_masks, prunable_weights, restore_subnetwork
from tests.helpers.callbacks import RecordingCallbacks, StopAfterSearchSteps
from tests.helpers.tiny_bert import torch_threads

HANS_FIXTURE = Path(__file__).parents[1] / "fixtures/data/hans/heuristics_evaluation_set.txt"


def make_spec(model: str, **overrides) -> JobSpec:
    payload = {
        "task": "mnli",
        "model": {"name_or_path": model},
        "data": {"max_train_examples": 96, "max_eval_examples": 48},
        "debias": {"loss": "none"},
        "pruning": {"sparsities": [0.5]},
        "dense": {"max_steps": 6, "learning_rate": 1e-3},
        "training": {
            "max_steps": 8,
            "eval_every": 4,
            "batch_size": 16,
            "max_length": 48,
            "learning_rate": 1e-2,
            "seeds": [1],
        },
        "evaluation": {"batch_size": 64},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            payload[key] = {**payload.get(key, {}), **value}
        else:
            payload[key] = value
    return JobSpec.model_validate(payload)


def zero_fraction(model, names) -> float:
    params = dict(model.named_parameters())
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    total = sum(params[n].numel() for n in names)
    return zeros / total


def reevaluate(spec: JobSpec, model) -> dict:
    data = load_job_data(spec)
    fn = make_evaluate_fn(data.eval_sets, data.labels, "dev", data.selection_key, 64)
    model.eval()
    return fn(model)


def test_mask_training_job_end_to_end(tiny_model, tmp_path):
    spec = make_spec(tiny_model, debias={"loss": "poe"})
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    report = json.loads(result.metrics_path.read_text())
    assert report["spec"]["debias"]["loss"] == "poe"
    assert report["bias"]["kind"] == "overlap_2way"
    assert set(report["versions"]) >= {"torch", "transformers"}
    (unit,) = report["results"]
    assert unit["sparsity"] == 0.5
    # selection only in the last 30% of 8 steps: evaluations at 4 and 8 → step 8 (≥ 5.6)
    assert unit["selected_step"] == 8
    assert [h["step"] for h in unit["history"]] == [4, 8]
    assert set(unit["metrics"]) == {"dev", "hans"}
    assert "lexical_overlap" in json.dumps(unit["metrics"]["hans"])
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    masks, meta = load_masks(result.masks[0])
    assert meta["target_sparsity"] == 0.5 and meta["scenario"] == "finetuned"
    assert abs(meta["sparsity"]["sparsity_over_masked_weights"] - 0.5) < 1e-3

    # metrics.json names the data as the spec did (bundled sample), never a server path.
    given = {"format": "pair_json", "path": "sample:mnli/train.json"}
    assert report["data"]["train_source"] == given
    assert "train_origin" not in report["data"] and "hans" in report["data"]["ood_sources"]
    assert str(Path(__file__).parents[2]) not in json.dumps(report["data"])

    # A Hugging Face-native checkpoint: the head's class, a model card, group-readable files.
    checkpoint = result.checkpoints[0]
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert {p.stat().st_mode & 0o777 for p in checkpoint.iterdir()} == {0o644}
    assert checkpoint.stat().st_mode & 0o777 == 0o755
    from huggingface_hub import ModelCard

    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.pipeline_tag == "text-classification" and "poe" in card.data.tags
    sparsity = unit["sparsity_report"]
    assert f"{sparsity['pruned_weights']:,} of {sparsity['masked_weights']:,}" in card.text
    assert "Win-win Deal" in card.text and "NeurIPS" in card.text and "| hans | OOD |" in card.text
    dev = unit["metrics"]["dev"]["accuracy"]
    assert f"| dev | ID | {100 * dev:.2f} |" in card.text
    # Issue 19 item 6: HANS by heuristic, the dense start model beside, the data used.
    assert "### hans by gold label and heuristic" in card.text
    assert "dense (none): accuracy" in card.text and "| lexical_overlap |" in card.text
    assert "training rows; 8 optimisation steps" in card.text

    model = AutoModelForSequenceClassification.from_pretrained(result.checkpoints[0])
    assert model.config.id2label == {0: "contradiction", 1: "entailment", 2: "neutral"}
    names = prunable_weights(model, include_classifier=True)
    assert set(masks) == set(names)
    assert zero_fraction(model, names) == pytest.approx(0.5, abs=2e-3)
    # The exported checkpoint gives the numbers the job reported.
    with torch_threads(1):
        again = reevaluate(spec, model)
    assert again["dev"]["accuracy"] == unit["metrics"]["dev"]["accuracy"]
    assert again["hans"]["accuracy"] == unit["metrics"]["hans"]["accuracy"]


def test_dense_stage_is_reused_across_jobs(tiny_model, tmp_path):
    cache = tmp_path / "cache"
    with torch_threads(1):
        first = run_search(make_spec(tiny_model), tmp_path / "a", cache_dir=cache)
        second = run_search(
            make_spec(tiny_model, pruning={"sparsities": [0.3]}), tmp_path / "b", cache_dir=cache
        )
    a = json.loads(first.metrics_path.read_text())["dense"][0]
    b = json.loads(second.metrics_path.read_text())["dense"][0]
    assert a["cached"] is False and b["cached"] is True
    assert a["metrics"] == b["metrics"]
    assert len(list(cache.glob("dense-*"))) == 1


def test_a_dense_fine_tune_is_not_reused_for_another_ood_set_of_the_same_name(tiny_model, tmp_path):
    """The cached fine-tune carries its evaluations: a job scoring other HANS rows under the
    name `hans` must not report the first job's numbers as its own dense model's."""
    lines = HANS_FIXTURE.read_text().splitlines(keepends=True)
    other = tmp_path / "other_hans.tsv"
    other.write_text("".join(lines[: 1 + (len(lines) - 1) // 2]))  # header + first half
    cache = tmp_path / "cache"
    reports = []
    for name, path in (("a", HANS_FIXTURE), ("b", other)):
        ood = {"hans": {"format": "hans_tsv", "path": str(path), "metric": "hans"}}
        with torch_threads(1):
            result = run_search(
                make_spec(tiny_model, data={"ood": ood}), tmp_path / name, cache_dir=cache
            )
        reports.append(json.loads(result.metrics_path.read_text())["dense"][0])
    assert [r["cached"] for r in reports] == [False, False]
    assert reports[0]["metrics"]["hans"]["n"] != reports[1]["metrics"]["hans"]["n"]
    assert len(list(cache.glob("dense-*"))) == 2


def test_imp_applies_the_debiasing_loss(tiny_model, tmp_path):
    """The reference code's IMP silently trained with CE; ours must use the job's loss."""
    states = {}
    for loss in ("none", "poe"):
        spec = make_spec(
            tiny_model,
            debias={"loss": loss},
            pruning={"method": "imp", "sparsities": [0.2]},
            training={"imp_round_epochs": 0.25, "max_steps": None},
        )
        with torch_threads(1):
            result = run_search(spec, tmp_path / loss, cache_dir=tmp_path / "cache")
        model = AutoModelForSequenceClassification.from_pretrained(result.checkpoints[0])
        states[loss] = model.state_dict()
        report = json.loads(result.metrics_path.read_text())
        assert report["results"][0]["sparsity"] == 0.2
        names = prunable_weights(model, include_classifier=False)
        assert zero_fraction(model, names) == pytest.approx(0.2, abs=2e-3)
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(states["none"][key], states["poe"][key])


def test_frozen_scenario_reproduces_from_mask_file(tiny_model, tmp_path):
    spec = make_spec(tiny_model, pruning={"scenario": "pretrained_frozen"})
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
        report = json.loads(result.metrics_path.read_text())
        assert report["dense"] == []  # scenario 3 trains no weight
        # A fresh pre-trained model with ANOTHER random classifier + the mask file.
        torch.manual_seed(1234)
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3)
        meta = restore_subnetwork(model, result.masks[0])
        assert meta["scenario"] == "pretrained_frozen"
        again = reevaluate(spec, model)
    unit = report["results"][0]
    assert again["dev"]["accuracy"] == unit["metrics"]["dev"]["accuracy"]
    assert again["hans"]["accuracy"] == unit["metrics"]["hans"]["accuracy"]


def test_retrain_scenario_keeps_the_mask(tiny_model, tmp_path):
    spec = make_spec(
        tiny_model,
        pruning={"scenario": "pretrained_retrain", "method": "magnitude", "sparsities": [0.4]},
    )
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    report = json.loads(result.metrics_path.read_text())
    assert report["results"][0]["stage"] == "retrain"
    model = AutoModelForSequenceClassification.from_pretrained(result.checkpoints[0])
    names = prunable_weights(model, include_classifier=False)
    assert zero_fraction(model, names) == pytest.approx(0.4, abs=2e-3)
    pretrained = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    key = "bert.encoder.layer.1.output.dense.weight"
    kept = model.state_dict()[key] != 0
    assert not torch.equal(model.state_dict()[key][kept], pretrained.state_dict()[key][kept])


def test_gradual_sparsity_saves_the_final_sparsity(tiny_model, tmp_path):
    spec = make_spec(
        tiny_model,
        pruning={"schedule": "gradual", "initial_sparsity": 0.3, "sparsities": [0.6]},
        training={"max_steps": 10, "eval_every": 2},
    )
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    unit = json.loads(result.metrics_path.read_text())["results"][0]
    recorded = [h["info"]["sparsity"] for h in unit["history"]]
    assert recorded[0] < 0.6 and recorded[-1] == pytest.approx(0.6)
    selected = next(h for h in unit["history"] if h["step"] == unit["selected_step"])
    assert selected["info"]["sparsity"] == pytest.approx(0.6)
    _, meta = load_masks(result.masks[0])
    assert meta["sparsity"]["sparsity_over_masked_weights"] == pytest.approx(0.6, abs=1e-3)


def test_interrupted_search_resumes_to_the_same_mask(tiny_model, tmp_path):
    spec = make_spec(tiny_model, training={"max_steps": 12, "eval_every": 4})
    with torch_threads(1):
        straight = run_search(spec, tmp_path / "straight", cache_dir=tmp_path / "cache")
        with pytest.raises(Cancelled):
            run_search(
                spec, tmp_path / "resumed", StopAfterSearchSteps(5), cache_dir=tmp_path / "cache"
            )
        resumed = run_search(spec, tmp_path / "resumed", cache_dir=tmp_path / "cache")
    a, _ = load_masks(straight.masks[0])
    b, _ = load_masks(resumed.masks[0])
    assert all(torch.equal(a[n], b[n]) for n in a)
    ra = json.loads(straight.metrics_path.read_text())["results"][0]
    rb = json.loads(resumed.metrics_path.read_text())["results"][0]
    assert ra["metrics"] == rb["metrics"] and ra["selected_step"] == rb["selected_step"]


def test_search_from_an_early_dense_checkpoint(tiny_model, tmp_path):
    spec = make_spec(tiny_model, dense={"max_steps": 12, "stop_at_step": 4})
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    dense = json.loads(result.metrics_path.read_text())["dense"][0]
    assert dense["selected_step"] == 4
    assert dense["history"][-1]["step"] == 4


def ood_training_spec(model: str, max_train_examples: int, **ood_training) -> JobSpec:
    """A job mixing the HANS fixture into its training rows, twice over, HANS non-entailment
    mapped to contradiction; `ood_training`: further fields of data.ood_training."""
    source = {"format": "hans_tsv", "path": str(HANS_FIXTURE)}
    ood = {"sources": [source], "duplication": 2, "label_map": {"non-entailment": "contradiction"}}
    data = {"max_train_examples": max_train_examples, "ood_training": {**ood, **ood_training}}
    return make_spec(model, data=data)


def test_ood_upper_bound_mixes_ood_training_rows(tiny_model):
    data = load_job_data(ood_training_spec(tiny_model, 96))
    extra = [e for e in data.train.examples if e.uid.startswith("ood")]
    assert len(data.train) == 96 + len(extra) and len(extra) % 2 == 0 and extra
    contradiction = data.labels.index("contradiction")
    assert {e.label for e in extra} <= {contradiction, data.labels.index("entailment")}
    assert any(e.label == contradiction for e in extra)


def test_ood_training_max_examples_keeps_a_seeded_sample_of_each_source(tiny_model):
    def ood_rows(max_examples):
        spec = ood_training_spec(tiny_model, 16, max_examples=max_examples)
        return [e for e in load_job_data(spec).train.examples if e.uid.startswith("ood")]

    every = ood_rows(None)
    sample = ood_rows(3)
    assert len(every) > 2 * 3 and len(sample) == 2 * 3  # three rows, each twice
    assert [e.uid for e in sample] == [e.uid for e in ood_rows(3)]  # seeded: the same rows
    assert {e.uid for e in sample} < {e.uid for e in every}


def test_every_evaluation_names_its_curve(tiny_model, tmp_path):
    """Receivers (the worker) file evaluations by their CurveId, not by parsing progress text;
    the typed result is what metrics.json holds."""
    spec = make_spec(
        tiny_model,
        pruning={"method": "imp", "sparsities": [0.2]},
        training={"imp_round_epochs": 0.25, "max_steps": None, "seeds": [7]},
    )
    record = RecordingCallbacks()
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", record, cache_dir=tmp_path / "cache")
    dense = [curve for curve, _, _ in record.metrics if curve.stage == "dense"]
    search = [curve for curve, _, _ in record.metrics if curve.stage == "search"]
    assert dense and all((c.seed, c.sparsity, c.loss) == (7, 0.0, "none") for c in dense)
    assert {c.imp_round for c in search} == {1, 2}
    assert all(c.seed == 7 for c in search)  # the job's seed, not the round's data seed
    assert {c.sparsity for c in search} == {0.1, 0.2}
    assert all("selection" in m and "train_loss" in m for _, _, m in record.metrics)

    assert record.units == result.units and record.dense == result.dense
    (unit,) = result.units
    assert unit.curve == CurveId(stage="search", seed=7, sparsity=0.2)
    assert unit.mask == tmp_path / "out/masks/seed-7/mask-0.20.safetensors"
    again = SearchResult.read(tmp_path / "out")
    assert again == result and again.report() == json.loads(result.metrics_path.read_text())
    curves = [(c.id.stage, c.id.sparsity, c.selected_step) for c in result.curves()]
    assert curves == [("dense", 0.0, result.dense[0].selected_step),
                      ("search", 0.2, unit.selected_step)]  # fmt: skip


def test_several_seeds_are_summarised_with_mean_and_spread(tiny_model, tmp_path):
    spec = make_spec(
        tiny_model,
        pruning={"method": "magnitude", "sparsities": [0.3]},
        training={"seeds": [1, 2]},
    )
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    report = json.loads(result.metrics_path.read_text())
    assert [u["seed"] for u in report["results"]] == [1, 2]
    assert len(report["dense"]) == 2 and len(result.checkpoints) == 2
    (row,) = report["summary"]
    dev = [u["metrics"]["dev"]["accuracy"] for u in report["results"]]
    assert row["seeds"] == [1, 2] and row["sets"]["dev"]["accuracy"]["n"] == 2
    assert row["sets"]["dev"]["accuracy"]["mean"] == pytest.approx(sum(dev) / 2)
    assert row["sets"]["dev"]["accuracy"]["std"] == pytest.approx(abs(dev[0] - dev[1]) / 2)


def test_lottery_ticket_imp_with_rewind_then_retrain(tiny_model, tmp_path):
    spec = make_spec(
        tiny_model,
        pruning={"method": "imp", "scenario": "pretrained_retrain", "rewind": True,
                 "sparsities": [0.2]},
        training={"imp_round_epochs": 0.25, "max_steps": None},
    )  # fmt: skip
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    report = json.loads(result.metrics_path.read_text())
    assert report["dense"] == []  # the mask comes from the pre-trained model, not a fine-tune
    (unit,) = report["results"]
    assert unit["stage"] == "retrain" and unit["search_history"]
    model = AutoModelForSequenceClassification.from_pretrained(result.checkpoints[0])
    names = prunable_weights(model, include_classifier=False)
    assert zero_fraction(model, names) == pytest.approx(0.2, abs=2e-3)


@pytest.mark.parametrize("dense_loss", ["none", "job"])
def test_conf_reg_uses_the_dense_ce_model_as_teacher(tiny_model, tmp_path, dense_loss):
    spec = make_spec(tiny_model, debias={"loss": "conf_reg"}, dense={"loss": dense_loss})
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    report = json.loads(result.metrics_path.read_text())
    assert report["results"][0]["sparsity"] == 0.5
    assert len(list((tmp_path / "cache").glob("teacher-*"))) == 1
    # CE teacher, plus a conf_reg dense model when the dense fine-tune uses the job's loss
    assert len(list((tmp_path / "cache").glob("dense-*"))) == (1 if dense_loss == "none" else 2)
    assert report["dense"][0]["cached"] is (dense_loss == "none")


def test_progress_covers_the_whole_job_and_its_evaluations(tiny_model, tmp_path):
    spec = make_spec(tiny_model, pruning={"sparsities": [0.3, 0.5]})
    record = RecordingCallbacks()
    with torch_threads(1):
        run_search(spec, tmp_path / "out", record, cache_dir=tmp_path / "cache")
    fractions = [p.job_fraction for p in record.progress]
    assert all(f is not None for f in fractions)
    assert fractions == sorted(fractions)  # never goes back across stages
    assert fractions[0] < 0.3 and fractions[-1] > 0.9
    assert {p.stage for p in record.progress} == {"dense", "search"}
    assert any(p.phase == "evaluate" for p in record.progress)
    assert all(p.elapsed_s is not None and p.elapsed_s >= 0 for p in record.progress)
    assert record.stages[:3] == ["data", "bias", "dense"] and record.stages[-1] == "export"

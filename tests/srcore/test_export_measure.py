"""export.measure and export.onnx through run_search on a tiny BERT: every checkpoint's card
and metrics.json carry its size and latency against the dense model (or "not measured"), and
an ONNX model whose accuracy, recomputed by ONNX Runtime, is within 0.5 points of PyTorch's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from srcore.export_measure import median_ms, safetensors_size
from srcore.jobspec.results import NOT_MEASURED, ExportMeasurement, SearchResult
from srcore.jobspec.spec import JobSpec, spec_hash
from srcore.pipeline import run_search
from tests.helpers.tiny_bert import torch_threads
from tests.srcore.test_structured_pipeline import _payload, tiny_roberta_model  # noqa: F401


def _spec(model: str, structure: str, **export) -> JobSpec:
    payload = _payload(model, structure=structure, method="magnitude")
    payload["data"]["max_eval_examples"] = 48
    payload["export"] = export
    return JobSpec.model_validate(payload)


def _run(spec: JobSpec, tmp_path: Path) -> tuple[SearchResult, dict]:
    with torch_threads(1):
        result = run_search(spec, tmp_path / "out", cache_dir=tmp_path / "cache")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    return result, metrics["results"][0]


def test_a_structured_checkpoint_is_measured_and_exported_to_onnx(tiny_model, tmp_path):
    result, written = _run(_spec(tiny_model, "ffn_neurons", onnx="fp32"), tmp_path)
    (unit,) = result.units
    m = unit.measured
    assert isinstance(m, ExportMeasurement)
    # what the card says is what the files hold: fewer parameters and bytes than the dense
    assert m.size == safetensors_size(unit.checkpoint)
    assert m.size.parameters == unit.sparsity_report["structured"]["model_parameters_after_export"]
    assert m.size.parameters < m.dense_size.parameters
    assert m.size.bytes < m.dense_size.bytes
    assert m.size_ratio == pytest.approx(m.size.bytes / m.dense_size.bytes, abs=1e-4)
    lat = m.latency
    assert (lat.batch, lat.threads, lat.repeats) == (32, 1, 3)
    assert lat.length == 128
    assert lat.ms > 0 and lat.dense_ms > 0
    assert lat.ratio == pytest.approx(lat.ms / lat.dense_ms, rel=1e-3)
    assert lat.onnx_ms is not None and lat.onnx_ratio is not None
    assert written["measured"]["latency"]["ratio"] == lat.ratio
    card = (unit.checkpoint / "README.md").read_text()
    assert "## Size and speed" in card
    assert f"{m.size.parameters:,} | {m.dense_size.parameters:,}" in card
    assert f"{lat.ratio:.2f}× dense" in card
    assert "no speedup is expected" not in card and "physically smaller" in card

    # ONNX: its own folder and numbers, within 0.5 points of the PyTorch evaluation
    onnx = unit.onnx
    assert onnx is not None and onnx.format == "fp32"
    assert (onnx.folder / "model.onnx").is_file() and onnx.file == "model.onnx"
    assert set(onnx.metrics) == set(unit.metrics) == {"dev", "hans"}
    for name, values in onnx.metrics.items():
        assert values["n"] == unit.metrics[name]["n"]
        assert abs(values["accuracy"] - unit.metrics[name]["accuracy"]) <= 0.005
        assert abs(onnx.accuracy_difference[name]) <= 0.5
    assert written["onnx"]["metrics"]["dev"]["accuracy"] == onnx.metrics["dev"]["accuracy"]
    assert (onnx.folder / "README.md").read_text() == card
    assert "## ONNX model" in card and "`model.onnx` (fp32, ONNX Runtime)" in card
    public = result.public_report("job-1")["results"][0]
    assert public["onnx"]["folder"] == "job-1-onnx-seed1-sparsity0.50.tar"
    assert public["onnx"]["metrics"] == written["onnx"]["metrics"]


def test_an_unstructured_card_says_no_speedup_and_not_measured(tiny_model, tmp_path):
    result, written = _run(_spec(tiny_model, "unstructured", measure=False), tmp_path)
    (unit,) = result.units
    assert unit.measured == NOT_MEASURED == written["measured"]
    assert unit.onnx is None and written["onnx"] is None
    assert not (tmp_path / "out" / "onnx").exists()
    assert not (tmp_path / "out" / "work" / "dense-reference").exists()  # nothing measured
    card = (unit.checkpoint / "README.md").read_text()
    assert "**no speedup is expected in plain `transformers`**" in card
    assert "against the dense model: not measured" in card
    assert "## ONNX model" not in card


def test_int8_keeps_only_the_quantized_model(tiny_model, tmp_path):
    result, _ = _run(_spec(tiny_model, "ffn_neurons+heads", onnx="int8", measure=False), tmp_path)
    onnx = result.units[0].onnx
    assert onnx is not None and onnx.file == "model_int8.onnx"
    assert sorted(p.name for p in onnx.folder.glob("*.onnx")) == ["model_int8.onnx"]
    assert onnx.heads_per_layer == [1, 1]  # the zeroed heads are gone from the graph
    assert onnx.bytes == (onnx.folder / "model_int8.onnx").stat().st_size
    assert {"dev", "hans"} <= set(onnx.metrics)


def test_export_settings_are_validated_and_keep_stored_hashes(tiny_model):
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"export": {"onnx": "fp16"}})
    assert info.value.errors()[0]["loc"] == ("export", "onnx")
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"export": {"measured": False}})
    assert info.value.errors()[0]["loc"] == ("export", "measured")
    # a job stored before the section existed keeps its hash; a set value changes it
    assert spec_hash(JobSpec()) == spec_hash(JobSpec.model_validate({"export": {}}))
    assert spec_hash(JobSpec()) != spec_hash(JobSpec.model_validate({"export": {"onnx": "int8"}}))
    assert "export" not in JobSpec().model_dump(exclude_defaults=True)


def test_median_ms_takes_turns_after_a_warm_up():
    calls: list[str] = []
    ms = median_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4 and set(ms) == {"a", "b"}


def test_a_roberta_model_is_timed_inside_its_position_table(tiny_roberta_model):  # noqa: F811
    from srcore.export_measure import measure_export

    m = measure_export(tiny_roberta_model, tiny_roberta_model, repeats=1)
    # 64 positions, numbered from pad_token_id + 1 (RoBERTa; the tiny [PAD] is 0)
    assert m.latency.length == 64 - (0 + 1)
    assert m.size == m.dense_size and m.size_ratio == 1.0

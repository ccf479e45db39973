"""The model card (README.md) of an exported checkpoint, from the job that found it, written
with huggingface_hub's card tools so the hub reads its metadata (pipeline tag, base model,
metrics as a model-index). Torch-free."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from srcore.jobspec.names import LOSS_DESCRIPTIONS, METHOD_FACTS

PAPER_TITLE = "A Win-win Deal: Towards Sparse and Robust Pre-trained Language Models"
PAPER_URL = "https://arxiv.org/abs/2210.05211"
CITATION = """@inproceedings{liu2022winwin,
  title     = {A Win-win Deal: Towards Sparse and Robust Pre-trained Language Models},
  author    = {Liu, Yuanxin and Meng, Fandong and Lin, Zheng and Li, Jiangnan and Fu, Peng and
               Cao, Yanan and Wang, Weiping and Zhou, Jie},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}"""

_SCENARIOS = {
    "finetuned": "pruned from the dense fine-tuned model",
    "pretrained_retrain": "mask from the pre-trained model, then the subnetwork fine-tuned",
    "pretrained_frozen": "mask on the frozen pre-trained weights (with a seeded classifier)",
}


def _method_description(method: str) -> str:
    facts = METHOD_FACTS.get(method)
    return facts.description if facts is not None and facts.description else method


@dataclass
class CardFacts:
    """What the card says about one subnetwork (a seed × sparsity of a job)."""

    task: str
    labels: Sequence[str]
    base_model: str
    train_source: Mapping[str, Any]  # as the spec gave it (format, path or hub)
    loss: str
    method: str
    scenario: str
    seed: int
    target_sparsity: float
    sparsity: Mapping[str, Any]  # srcore.pruning.sparsity_report (without per_matrix)
    metrics: Mapping[str, Mapping[str, Any]]  # set name -> metrics at the selected step
    id_set: str  # the in-distribution set that selected the step ("dev")
    selected_step: int
    versions: Mapping[str, str]
    spec_hash: str
    name: str | None = None
    extra_tags: list[str] = field(default_factory=list)
    # The model the search started from (the dense fine-tune), at its own selected step:
    # beside the subnetwork's numbers, a reader sees what pruning and the loss changed.
    start_metrics: Mapping[str, Mapping[str, Any]] | None = None
    start_name: str | None = None
    # What was actually used: training rows, optimisation steps, the evaluation subsample.
    train_rows: int | None = None
    steps: int | None = None
    max_eval_examples: int | None = None
    has_pooler: bool = True  # BERT has one; RoBERTa and DistilBERT do not
    structure: str = "unstructured"  # pruning.structure
    # srcore.jobspec.results.ExportMeasurement as JSON, or "not measured"; None: not known
    measured: Mapping[str, Any] | str | None = None
    onnx: Mapping[str, Any] | None = None  # srcore.jobspec.results.OnnxResult as JSON


def _pct(value: Any) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{100 * value:.2f}"
    return "–"


# Bundled models by the hub id of what they are (srcore.models' names).
_BUNDLED_HUB_IDS = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def _hub_base_model(name: str) -> str | None:
    """The card's `base_model`: a hub id, never a local folder."""
    if name in _BUNDLED_HUB_IDS:
        return _BUNDLED_HUB_IDS[name]
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        return None
    return name


def _base_model_text(name: str) -> str:
    """The base model as the card names it: a hub id or bundled name as given, a local folder
    by its last component only (a downloaded card never shows a server's folders)."""
    if _hub_base_model(name) is not None:
        return f"`{name}`"
    folder = name.rstrip("/").rsplit("/", 1)[-1] or "model"
    return f"a local model folder (`{folder}`)"


def _collapsed_sets(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [n for n, v in metrics.items() if isinstance(v, Mapping) and v.get("collapsed")]


def _collapse_text(values: Mapping[str, Any]) -> str:
    if not values.get("collapsed"):
        return ""
    share, label = values.get("majority_share"), values.get("majority_label")
    return f"yes: {label} for {_pct(share)} %" if label is not None else "yes"


def _hans_rows(sub: Mapping[str, Any], start: Mapping[str, Any] | None) -> list[str]:
    """Overall, then entailed and non-entailed gold pairs per heuristic (where biased models
    fail is the non-entailed column), the start model beside the subnetwork."""

    def cell(values: Mapping[str, Any] | None, key: str) -> str:
        return _pct(values.get(key)) if isinstance(values, Mapping) else "–"

    parts = [("all", sub, start)]
    start_h = (start or {}).get("heuristics") or {}
    for name, values in sorted((sub.get("heuristics") or {}).items()):
        parts.append((name, values, start_h.get(name)))
    rows = []
    for name, mine, theirs in parts:
        row = f"| {name} | {cell(mine, 'entailed')} | {cell(mine, 'non_entailed')} |"
        if start is not None:
            row += f" {cell(theirs, 'entailed')} | {cell(theirs, 'non_entailed')} |"
        rows.append(row)
    return rows


def _source_text(source: Mapping[str, Any]) -> str:
    where = source.get("hub") or source.get("path") or "?"
    note = ", a bundled sample" if str(where).startswith("sample:") else ""
    return f"`{where}` ({source.get('format', '?')}{note})"


def _used_text(facts: CardFacts) -> str:
    parts = []
    if facts.train_rows is not None:
        parts.append(f"{facts.train_rows:,} training rows")
    if facts.steps is not None:
        parts.append(f"{facts.steps:,} optimisation steps")
    if facts.max_eval_examples is not None:
        parts.append(f"each evaluation set subsampled to at most {facts.max_eval_examples:,} "
                     "examples (seeded; the `examples` column gives each set's count)")  # fmt: skip
    else:
        parts.append("every evaluation set in full")
    return "; ".join(parts)


def _structured_rows(st: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """pruning.structure ffn_neurons: what was removed, and that the checkpoint is smaller."""
    if not st:
        return []
    kept, n = st["ffn_neurons_kept_per_layer"], st["ffn_neurons_per_layer"]
    heads = st.get("heads_kept_per_layer")
    rows = [
        (
            "structure",
            f"whole FFN neurons: {kept[0]:,} of {n:,} kept in each of the "
            f"{len(kept)} layers ({_pct(st['unit_sparsity'])} % pruned; "
            f"{'' if heads else 'attention, '}embeddings, pooler and classifier kept); "
            f"{_pct(st['sparsity_over_encoder_parameters'])} % of the encoder layers' "
            f"parameters removed. The checkpoint is physically smaller: `intermediate_size` "
            f"{kept[0]:,}, {st['model_parameters_after_export']:,} parameters",
        )
    ]
    if heads:
        rows.append(
            (
                "attention heads",
                f"{heads[0]} of {st['heads_per_layer']} kept in each "
                "layer; the others are zeroed, not removed (transformers 5 has no "
                "`prune_heads`): the checkpoint keeps their zero weights and computes "
                "them, so heads save no memory or time in plain transformers",
            )
        )
    return rows  # fmt: skip


def _speed_lead(facts: CardFacts) -> str:
    if facts.structure == "unstructured":
        return (
            "The sparsity is unstructured (single weights zeroed anywhere in a matrix): **no "
            "speedup is expected in plain `transformers`**, which runs this model exactly as "
            "fast, and stores it as large, as the dense one. A speedup needs sparse kernels "
            "or structured pruning; what this checkpoint shows is how many weights the task "
            "needs."
        )
    heads = "+heads" in facts.structure
    return (
        f"The pruning is structured (`{facts.structure}`): whole FFN neurons are sliced out, so "
        "the checkpoint is physically smaller and runs faster in plain `transformers`"
        + (
            "; the pruned attention heads are zeroed here and removed only in the ONNX model"
            if heads
            else ""
        )
        + ". The measured size and latency are under *Size and speed*."
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _ratio(value: float) -> str:
    return f"{value:.2f}× dense" + (f" ({1 / value:.2f}× faster)" if value > 0 else "")


def _speed_section(facts: CardFacts) -> str:
    m = facts.measured
    if m is None:
        return ""
    head = "## Size and speed\n\n"
    if isinstance(m, str):
        return head + (
            f"Size and latency against the dense model: {m} (the job ran with "
            "`export.measure` off).\n\n"
        )
    size, dense, lat = m["size"], m["dense_size"], m["latency"]
    shape = f"batch {lat['batch']} × {lat['length']} tokens, {lat['threads']} thread(s)"
    rows = [
        "| | this model | dense model | ratio |",
        "|---|---|---|---|",
        f"| weights on disk (model.safetensors) | {_mb(size['bytes'])} ({size['bytes']:,} "
        f"bytes) | {_mb(dense['bytes'])} | {m['size_ratio']:.2f}× |",
        f"| parameters | {size['parameters']:,} | {dense['parameters']:,} | "
        f"{size['parameters'] / max(dense['parameters'], 1):.2f}× |",
        f"| CPU latency, PyTorch ({shape}) | {lat['ms']:.1f} ms | {lat['dense_ms']:.1f} ms | "
        f"{_ratio(lat['ratio'])} |",
    ]
    onnx_size = m.get("onnx_size")
    if lat.get("onnx_ms") is not None and facts.onnx is not None:
        fmt = facts.onnx.get("format", "fp32")
        rows.append(
            f"| CPU latency, ONNX Runtime {fmt} ({shape}) | {lat['onnx_ms']:.1f} ms | "
            f"{lat['dense_ms']:.1f} ms (PyTorch) | {_ratio(lat['onnx_ratio'])} |"
        )
    if onnx_size:
        rows.append(
            f"| ONNX file on disk | {_mb(onnx_size['bytes'])} | {_mb(dense['bytes'])} | "
            f"{onnx_size['bytes'] / max(dense['bytes'], 1):.2f}× |"
        )
    note = (
        f"Measured on the machine that exported it ({lat['cpu']}): random token ids, no "
        f"padding, median of {lat['repeats']} turns after a warm-up, the models taking turns; "
        "a latency ratio below 1 is faster than dense. A rough check, not a benchmark."
    )
    if facts.structure == "unstructured":
        note += " Unstructured zeros are computed like any weight: expect a ratio near 1."
    return head + "\n".join(rows) + "\n\n" + note + "\n\n"


def _onnx_section(facts: CardFacts) -> str:
    o = facts.onnx
    if not o:
        return ""
    rows = ["| set | PyTorch accuracy | ONNX accuracy | difference (points) |",
            "|---|---|---|---|"]  # fmt: skip
    for set_name in sorted(o.get("metrics", {}), key=lambda n: (n != facts.id_set, n)):
        mine = (facts.metrics.get(set_name) or {}).get("accuracy")
        theirs = (o["metrics"][set_name] or {}).get("accuracy")
        diff = (o.get("accuracy_difference") or {}).get(set_name)
        diff_text = f"{diff:+.2f}" if isinstance(diff, int | float) else "–"
        rows.append(f"| {set_name} | {_pct(mine)} | {_pct(theirs)} | {diff_text} |")
    heads = o.get("heads_per_layer") or []
    return (
        f"## ONNX model\n\n`{o['file']}` ({o['format']}, ONNX Runtime), in the job's ONNX "
        f"artifact beside this checkpoint: pruned FFN neurons and heads are removed from the "
        f"graph ({o['parameters']:,} parameters; heads per layer {heads}). Its accuracy, "
        f"recomputed by ONNX Runtime on the same sets:\n\n" + "\n".join(rows) + "\n\n"
    )


def model_card(facts: CardFacts) -> ModelCard:
    s = facts.sparsity
    zeros, masked = s.get("pruned_weights"), s.get("masked_weights")
    total = s.get("model_parameters")
    over_masked = s.get("sparsity_over_masked_weights")
    over_all = s.get("sparsity_over_all_parameters")
    title = facts.name or f"{facts.task} SRNet at {facts.target_sparsity:.0%} sparsity"
    collapsed = _collapsed_sets(facts.metrics)
    eval_results = []
    for set_name, values in facts.metrics.items():
        for metric in ("accuracy", "f1"):
            value = values.get(metric) if isinstance(values, Mapping) else None
            if isinstance(value, int | float) and math.isfinite(value):
                eval_results.append(EvalResult(
                    task_type="text-classification", dataset_type=set_name,
                    dataset_name=f"{set_name} ({'ID' if set_name == facts.id_set else 'OOD'})",
                    metric_type=metric, metric_value=round(float(value), 6),
                ))  # fmt: skip
    data = ModelCardData(
        model_name=title,
        base_model=_hub_base_model(facts.base_model),
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=[
            "srnet",
            "pruning",
            "sparse",
            *(["debiasing"] if facts.loss != "none" else []),
            *(["collapsed"] if collapsed else []),
            facts.task,
            facts.method,
            facts.loss,
            *facts.extra_tags,
        ],
        metrics=["accuracy"],
        eval_results=eval_results or None,
    )
    rows = [
        ("task", f"`{facts.task}` (labels: {', '.join(facts.labels)})"),
        ("base model", _base_model_text(facts.base_model)),
        ("training data", _source_text(facts.train_source)),
        ("data used", _used_text(facts)),
        ("debiasing loss", f"`{facts.loss}`: {LOSS_DESCRIPTIONS.get(facts.loss) or facts.loss}"),
        ("pruning method", f"`{facts.method}`: {_method_description(facts.method)}"),
        ("scenario", f"`{facts.scenario}`: {_SCENARIOS.get(facts.scenario, facts.scenario)}"),
        (
            "sparsity",
            f"{_pct(over_masked)} % of the {masked:,} prunable weights are zero "
            f"({zeros:,} of {masked:,}: every encoder layer's attention and "
            f"feed-forward matrices{' and the pooler' if facts.has_pooler else ''}"
            f"{' and the classifier' if facts.method == 'mask_training' else ''} "
            f"pruned per matrix; embeddings, biases and LayerNorm kept); "
            f"{_pct(over_all)} % of all {total:,} parameters",
        )
        if not s.get("structured")
        else (
            "sparsity",
            f"{_pct(over_masked)} % of the {masked:,} weights of the matrices "
            f"holding the units are zero in the mask file ({zeros:,}: the pruned "
            f"units' rows and columns); {_pct(over_all)} % of all {total:,} "
            "parameters of the unpruned model",
        ),
        *_structured_rows(s.get("structured")),
        ("target sparsity", f"{facts.target_sparsity:.0%}"),
        ("seed", str(facts.seed)),
        ("selected step", f"{facts.selected_step} (best {facts.id_set} score; OOD never selects)"),
        ("job spec hash", f"`{facts.spec_hash}`"),
    ]
    metric_rows = []
    start = facts.start_metrics
    start_name = facts.start_name or "start model"
    names = sorted(facts.metrics, key=lambda n: (n != facts.id_set, n))
    for set_name in names:
        values = facts.metrics[set_name]
        kind = "ID" if set_name == facts.id_set else "OOD"
        row = (
            f"| {set_name} | {kind} | {_pct(values.get('accuracy'))} | "
            f"{_pct(values.get('f1'))} | {_collapse_text(values)} | {values.get('n', '')} |"
        )
        if start is not None:
            theirs = start.get(set_name) or {}
            row += f" {_pct(theirs.get('accuracy'))} | {_collapse_text(theirs)} |"
        metric_rows.append(row)  # fmt: skip
    metric_header = "| set | kind | accuracy | F1 | collapsed | examples |"
    metric_rule = "|---|---|---|---|---|---|"
    if start is not None:
        metric_header += f" {start_name}: accuracy | {start_name}: collapsed |"
        metric_rule += "---|---|"
    hans_sections = []
    for set_name in names:
        values = facts.metrics[set_name]
        if isinstance(values, Mapping) and "non_entailed" in values:
            head = "| heuristic | entailed | non-entailed |"
            rule = "|---|---|---|"
            if start is not None:
                head += f" {start_name}: entailed | {start_name}: non-entailed |"
                rule += "---|---|"
            rows_text = chr(10).join(_hans_rows(values, (start or {}).get(set_name)))
            hans_sections.append(
                f"### {set_name} by gold label and heuristic{chr(10)}{chr(10)}"
                f"Accuracy in % on pairs whose gold label is entailment and on the others "
                f"(non-entailment: where a model that learned the lexical-overlap shortcut "
                f"fails). Read them together: a shift towards predicting non-entailment raises "
                f"one and lowers the other.{chr(10)}{chr(10)}{head}{chr(10)}{rule}{chr(10)}"
                f"{rows_text}{chr(10)}"
            )
    if collapsed:
        lead = (
            f"A sparse subnetwork of {_base_model_text(facts.base_model)} for `{facts.task}` "
            f"that has **collapsed** on {', '.join(f'`{n}`' for n in collapsed)}: it predicts "
            f"one class for at least 95 % of those examples (see the `collapsed` column). "
            f"Its accuracy there measures the share of that class, not robustness: do not use "
            f"it as a sparse and robust subnetwork."
        )
    else:
        lead = (
            f"A sparse and robust subnetwork (SRNet) candidate of "
            f"{_base_model_text(facts.base_model)} for `{facts.task}`: how robust, the OOD "
            f"numbers below say."
        )
    versions = ", ".join(f"{k} {v}" for k, v in facts.versions.items())
    label_text = ", ".join(f"{i}: {name}" for i, name in enumerate(facts.labels))
    content = f"""---
{data.to_yaml()}
---

# {title}

{lead} Found by the SRNet service following Liu et al., NeurIPS 2022,
[*{PAPER_TITLE}*]({PAPER_URL}). Pruned weights are stored as zeros: this is a plain
`transformers` checkpoint, no custom code.

{_speed_lead(facts)}

## How it was found

| | |
|---|---|
{chr(10).join(f"| {k} | {v} |" for k, v in rows)}

## Results at the selected step

In-distribution (ID) and out-of-distribution (OOD) sets, in %. `collapsed`: the model
predicts one class for at least 95 % of the set.

{metric_header}
{metric_rule}
{chr(10).join(metric_rows)}

{chr(10).join(hans_sections)}
{_speed_section(facts)}{_onnx_section(facts)}## How to load

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
inputs = tokenizer("The doctor saw the lawyer.", "The lawyer saw the doctor.",
                   return_tensors="pt")
print(model.config.id2label[int(model(**inputs).logits.argmax())])
```

Labels: {label_text}. Pair tasks take (premise, hypothesis) or (question 1, question 2).

## Versions

{versions}

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(content)

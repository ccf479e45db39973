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


def _source_text(source: Mapping[str, Any]) -> str:
    where = source.get("hub") or source.get("path") or "?"
    note = ", a bundled sample" if str(where).startswith("sample:") else ""
    return f"`{where}` ({source.get('format', '?')}{note})"


def model_card(facts: CardFacts) -> ModelCard:
    s = facts.sparsity
    zeros, masked = s.get("pruned_weights"), s.get("masked_weights")
    total = s.get("model_parameters")
    over_masked = s.get("sparsity_over_masked_weights")
    over_all = s.get("sparsity_over_all_parameters")
    title = facts.name or f"{facts.task} SRNet at {facts.target_sparsity:.0%} sparsity"
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
        tags=["srnet", "pruning", "sparse", "debiasing", facts.task, facts.method, facts.loss,
              *facts.extra_tags],
        metrics=["accuracy"],
        eval_results=eval_results or None,
    )
    rows = [
        ("task", f"`{facts.task}` (labels: {', '.join(facts.labels)})"),
        ("base model", f"`{facts.base_model}`"),
        ("training data", _source_text(facts.train_source)),
        ("debiasing loss", f"`{facts.loss}`: {LOSS_DESCRIPTIONS.get(facts.loss) or facts.loss}"),
        ("pruning method", f"`{facts.method}`: {_method_description(facts.method)}"),
        ("scenario", f"`{facts.scenario}`: {_SCENARIOS.get(facts.scenario, facts.scenario)}"),
        ("sparsity", f"{_pct(over_masked)} % of the {masked:,} prunable weights are zero "
                     f"({zeros:,} of {masked:,}: every encoder layer's 6 matrices and the pooler "
                     f"{'and the classifier ' if facts.method == 'mask_training' else ''}"
                     f"pruned per matrix; embeddings, biases and LayerNorm kept); "
                     f"{_pct(over_all)} % of all {total:,} parameters"),
        ("target sparsity", f"{facts.target_sparsity:.0%}"),
        ("seed", str(facts.seed)),
        ("selected step", f"{facts.selected_step} (best {facts.id_set} score; OOD never selects)"),
        ("job spec hash", f"`{facts.spec_hash}`"),
    ]
    metric_rows = []
    names = sorted(facts.metrics, key=lambda n: (n != facts.id_set, n))
    for set_name in names:
        values = facts.metrics[set_name]
        kind = "ID" if set_name == facts.id_set else "OOD"
        metric_rows.append(f"| {set_name} | {kind} | {_pct(values.get('accuracy'))} | "
                           f"{_pct(values.get('f1'))} | {values.get('n', '')} |")  # fmt: skip
    versions = ", ".join(f"{k} {v}" for k, v in facts.versions.items())
    label_text = ", ".join(f"{i}: {name}" for i, name in enumerate(facts.labels))
    content = f"""---
{data.to_yaml()}
---

# {title}

A sparse and robust subnetwork (SRNet) of `{facts.base_model}` for `{facts.task}`, found by
the SRNet service following Liu et al., NeurIPS 2022, [*{PAPER_TITLE}*]({PAPER_URL}). Pruned
weights are stored as zeros: this is a plain `transformers` checkpoint, no custom code.

## How it was found

| | |
|---|---|
{chr(10).join(f"| {k} | {v} |" for k, v in rows)}

## Results at the selected step

In-distribution (ID) and out-of-distribution (OOD) sets, in %.

| set | kind | accuracy | F1 | examples |
|---|---|---|---|---|
{chr(10).join(metric_rows)}

## How to load

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

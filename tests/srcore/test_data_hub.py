"""Hub sources: the offline error, id parsing, and how hub columns and class labels are read.

No network is used: the offline path runs with HF_DATASETS_OFFLINE=1 in a fresh process, and the
column mapping runs on in-memory `datasets.Dataset`s built from real fixture rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from srcore.data import hub
from srcore.data.loaders import DataFormatError, DataSourceUnavailable, load_split
from srcore.jobspec.spec import SourceSpec

MNLI = ("contradiction", "entailment", "neutral")

OFFLINE_SCRIPT = """
import sys
from srcore.data.loaders import DataSourceUnavailable, load_split
from srcore.jobspec.spec import SourceSpec
try:
    load_split(SourceSpec(format="glue_mnli_tsv", hub="glue/mnli:validation_matched"),
               ("contradiction", "entailment", "neutral"), "dev")
except DataSourceUnavailable as exc:
    print(exc)
    sys.exit(3)
"""


def test_offline_hub_source_fails_fast_with_advice():
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 3, result.stderr[-2000:]
    message = result.stdout.strip()
    assert message.startswith("hub source 'glue/mnli:validation_matched': ")
    assert "'glue' config 'mnli' split 'validation_matched'" in message
    assert "OFFLINE is set" in message
    assert "local file with `path`" in message
    assert "Traceback" not in result.stdout + result.stderr
    assert elapsed < 60, f"offline failure took {elapsed:.1f} s"


def test_offline_error_in_process_is_a_data_format_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = SourceSpec(format="hans_tsv", hub="hans:validation")
    with pytest.raises(DataFormatError) as info:  # callers may catch the parent class
        load_split(source, ("entailment", "non-entailment"), "hans")
    assert isinstance(info.value, DataSourceUnavailable)
    assert info.value.source == "hans:validation"
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    ("hub_id", "parsed"),
    [
        ("glue/mnli:validation_matched", ("glue", "mnli", "validation_matched")),
        ("hans:validation", ("hans", None, "validation")),
        ("jhu-cogsci/hans:train", ("jhu-cogsci/hans", None, "train")),
        ("nyu-mll/glue/qqp:validation", ("nyu-mll/glue", "qqp", "validation")),
        ("paws/labeled_final:test", ("paws", "labeled_final", "test")),
    ],
)
def test_parse_hub_id(hub_id, parsed):
    assert hub.parse_hub_id(hub_id) == parsed


@pytest.mark.parametrize("hub_id", ["glue/mnli", "glue/mnli:", ":train", "a//b:train", "a/b/c/d:x"])
def test_bad_hub_id(hub_id):
    with pytest.raises(DataFormatError, match="name\\[/config\\]:split"):
        hub.parse_hub_id(hub_id)


@pytest.fixture
def fake_hub(monkeypatch):
    datasets = pytest.importorskip("datasets")
    served: dict[str, object] = {}

    def fetch(hub_id: str):
        return served[hub_id]

    monkeypatch.setattr(hub, "_fetch", fetch)
    return datasets, served


def test_hub_glue_mnli_uses_class_label_names(fake_hub):
    datasets, served = fake_hub
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
            "idx": datasets.Value("int32"),
        }
    )
    served["glue/mnli:validation_matched"] = datasets.Dataset.from_dict(
        {
            "premise": [
                "The new rights are nice enough",
                "This site includes a list of all award winners and a searchable database of "
                "Government Executive articles.",
                "i don't know um do you do a lot of camping",
            ],
            "hypothesis": [
                "Everyone really likes the newest benefits ",
                "The Government Executive articles housed on the website are not able to be "
                "searched.",
                "I know exactly.",
            ],
            "label": [1, 2, -1],  # -1: an unlabelled (test-style) row, skipped
            "idx": [0, 1, 4],
        },
        features=features,
    )
    source = SourceSpec(format="glue_mnli_tsv", hub="glue/mnli:validation_matched")
    split = load_split(source, MNLI, "dev")
    assert split.origin == "hub:glue/mnli:validation_matched"
    assert [(e.uid, MNLI[e.label]) for e in split.examples] == [
        ("0", "neutral"),
        ("1", "contradiction"),
    ]
    assert split.examples[0].text_a == "The new rights are nice enough"


def test_hub_qqp_integer_labels_become_0_1(fake_hub):
    datasets, served = fake_hub
    features = datasets.Features(
        {
            "question1": datasets.Value("string"),
            "question2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["not_duplicate", "duplicate"]),
            "idx": datasets.Value("int32"),
        }
    )
    served["glue/qqp:train"] = datasets.Dataset.from_dict(
        {
            "question1": [
                "Can I develope mobile apps with c++?",
                "Where can I get Raki in Las Vegas?",
            ],
            "question2": [
                "How can I develop mobile apps with C++?",
                'Why is a drink of liquor called a "shot"?',
            ],
            "label": [1, 0],
            "idx": [360105, 131376],
        },
        features=features,
    )
    split = load_split(SourceSpec(format="glue_qqp_tsv", hub="glue/qqp:train"), ("0", "1"), "t")
    assert [(e.uid, e.label) for e in split.examples] == [("360105", 1), ("131376", 0)]


def test_hub_hans_keeps_heuristics_and_label_map(fake_hub):
    datasets, served = fake_hub
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "non-entailment"]),
            "heuristic": datasets.Value("string"),
            "subcase": datasets.Value("string"),
            "template": datasets.Value("string"),
        }
    )
    served["hans:train"] = datasets.Dataset.from_dict(
        {
            "premise": ["The scientists thanked the president ."],
            "hypothesis": ["The president thanked the scientists ."],
            "label": [1],
            "heuristic": ["lexical_overlap"],
            "subcase": ["ln_subject/object_swap"],
            "template": ["temp1"],
        },
        features=features,
    )
    source = SourceSpec(
        format="hans_tsv", hub="hans:train", label_map={"non-entailment": "contradiction"}
    )
    split = load_split(source, MNLI, "hans")
    (example,) = split.examples
    assert example.uid == "0"  # no pairID column on the hub: the row number
    assert MNLI[example.label] == "contradiction"
    assert example.meta == {
        "heuristic": "lexical_overlap",
        "subcase": "ln_subject/object_swap",
        "template": "temp1",
    }


def test_hub_missing_column_and_bad_label_name_the_row(fake_hub):
    datasets, served = fake_hub
    served["x/pairs:train"] = datasets.Dataset.from_dict(
        {"sentence1": ["a"], "sentence2": ["b"], "label": [0]}
    )
    with pytest.raises(DataFormatError, match="needs column\\(s\\) 'premise', 'hypothesis'"):
        load_split(SourceSpec(format="glue_mnli_tsv", hub="x/pairs:train"), MNLI, "t")
    served["x/claims:train"] = datasets.Dataset.from_dict(
        {"claim": ["c1", "c2"], "evidence": ["e1", "e2"], "gold_label": ["SUPPORTS", "MAYBE"]}
    )
    with pytest.raises(DataFormatError) as info:
        load_split(
            SourceSpec(format="fever_nli_jsonl", hub="x/claims:train"),
            ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO"),
            "t",
        )
    assert str(info.value).startswith("hub source 'x/claims:train', row 1: unknown label 'MAYBE'")

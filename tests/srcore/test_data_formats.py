"""Each format read from real rows (tests/fixtures/data): texts, labels, ids and meta."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from srcore.data.loaders import eval_label_names, load_split
from srcore.jobspec.spec import ColumnMap, SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
MNLI = ("contradiction", "entailment", "neutral")
QQP = ("0", "1")
FEVER = ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO")
HANS = ("entailment", "non-entailment")


def _load(fmt: str, rel: str, labels, **kw):
    source = SourceSpec(format=fmt, path=str(FIXTURES / rel), **kw)
    return load_split(source, labels, "test")


def test_glue_mnli_tsv_reads_official_columns():
    split = _load("glue_mnli_tsv", "mnli/glue_train.tsv", MNLI)
    assert len(split) == 12
    assert [MNLI[e.label] for e in split.examples] == ["entailment"] * 4 + ["neutral"] * 4 + [
        "contradiction"
    ] * 4
    first = split.examples[0]
    assert first.uid == "136628e"
    assert first.text_a == "Price caps may sound more attractive with every passing rate case."
    assert first.text_b == "Rate cases make price caps sound more attractive."
    assert first.label == MNLI.index("entailment") == 1
    assert first.meta == {"pairID": "136628e", "promptID": "136628", "genre": "government"}
    assert split.label_names == MNLI and split.name == "test"
    assert split.origin == str(FIXTURES / "mnli/glue_train.tsv")


def test_glue_mnli_dev_matched_tsv():
    split = _load("glue_mnli_tsv", "mnli/glue_dev_matched.tsv", MNLI)
    assert [e.uid for e in split.examples] == [
        "107047e", "24567e", "14462n", "76018n", "59334c", "75077c"
    ]  # fmt: skip
    # A sentence with typographic quotes survives untouched (no CSV quoting in MNLI files).
    assert split.examples[0].text_a.startswith("Did you \u201dwhile you happened to be alone")


def test_glue_mnli_skips_unlabelled_rows(tmp_path):
    lines = (FIXTURES / "mnli/glue_train.tsv").read_text(encoding="utf-8").splitlines()
    fields = lines[5].split("\t")  # the first neutral row
    fields[-1] = "-"
    lines[5] = "\t".join(fields)
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    split = load_split(SourceSpec(format="glue_mnli_tsv", path=str(path)), MNLI, "train")
    assert len(split) == 11
    assert "81522n" not in {e.uid for e in split.examples}


def test_mnli_dev_tsv():
    split = _load("mnli_dev_tsv", "mnli/dev_matched.tsv", MNLI)
    assert len(split) == 10
    assert [e.uid for e in split.examples] == [str(i) for i in range(10)]
    second = split.examples[1]
    assert second.text_a.startswith("This site includes a list of all award winners")
    assert second.label == MNLI.index("contradiction") == 0
    # Trailing spaces in the official text are kept (the tokenizer drops them).
    assert split.examples[0].text_b == "Everyone really likes the newest benefits "
    assert Counter(MNLI[e.label] for e in split.examples) == {
        "contradiction": 6,
        "neutral": 3,
        "entailment": 1,
    }


def test_pair_json_mnli():
    split = _load("pair_json", "mnli/train.json", MNLI)
    assert [e.uid for e in split.examples] == [str(i) for i in range(12)]
    assert split.examples[2].text_a == "Some people think you have it easier."
    assert split.examples[2].label == MNLI.index("neutral")
    assert Counter(MNLI[e.label] for e in split.examples) == {
        "entailment": 7,
        "neutral": 4,
        "contradiction": 1,
    }


def test_pair_json_orders_keys_numerically(tmp_path):
    entries = json.loads((FIXTURES / "mnli/train.json").read_text(encoding="utf-8"))
    shuffled = {k: entries[k] for k in ["10", "2", "11", "0", "1", "3", "4", "5", "6", "7", "8"]}
    path = tmp_path / "train.json"
    path.write_text(json.dumps(shuffled), encoding="utf-8")
    split = load_split(SourceSpec(format="pair_json", path=str(path)), MNLI, "train")
    expected = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "10", "11"]
    assert [e.uid for e in split.examples] == expected


def test_pair_json_qqp():
    split = _load("pair_json", "qqp/train.json", QQP)
    assert len(split) == 10
    assert split.examples[0].text_a == (
        "How do I get inside University College London being an Indian?"
    )
    assert all(e.label == 0 for e in split.examples)


def test_hans_tsv_keeps_heuristic_subcase_pair_id():
    split = _load("hans_tsv", "hans/heuristics_evaluation_set.txt", HANS)
    assert len(split) == 30
    first = split.examples[0]
    assert first.uid == "ex0"
    assert first.text_a == "The scientists thanked the president ."
    assert first.text_b == "The president thanked the scientists ."
    assert first.label == HANS.index("non-entailment")
    assert first.meta == {
        "heuristic": "lexical_overlap",
        "subcase": "ln_subject/object_swap",
        "pairID": "ex0",
        "template": "temp1",
    }
    assert Counter(e.meta["heuristic"] for e in split.examples) == {
        "lexical_overlap": 10,
        "subsequence": 10,
        "constituent": 10,
    }
    assert len({e.meta["subcase"] for e in split.examples}) == 30
    by_label = Counter((e.meta["heuristic"], HANS[e.label]) for e in split.examples)
    assert set(by_label.values()) == {5}  # each heuristic: 5 entailed, 5 non-entailed subcases


def test_hans_label_map_for_ood_training():
    split = _load(
        "hans_tsv",
        "hans/heuristics_evaluation_set.txt",
        MNLI,
        label_map={"non-entailment": "contradiction"},
    )
    assert Counter(MNLI[e.label] for e in split.examples) == {
        "contradiction": 15,
        "entailment": 15,
    }


def test_gzip_is_read_transparently_for_every_format(tmp_path):
    cases = [
        ("hans_tsv", "hans/heuristics_evaluation_set.txt", HANS, 30),
        ("pair_json", "mnli/train.json", MNLI, 12),
        ("glue_qqp_tsv", "qqp/glue_train.tsv", QQP, 10),
        ("fever_symmetric_v1", "fever_symmetric/fever_symmetric_generated.jsonl", FEVER, 10),
    ]
    for fmt, rel, labels, rows in cases:
        plain = _load(fmt, rel, labels)
        packed = tmp_path / (Path(rel).name + ".gz")
        with open(FIXTURES / rel, "rb") as src, gzip.open(packed, "wb") as dst:
            shutil.copyfileobj(src, dst)
        zipped = load_split(SourceSpec(format=fmt, path=str(packed)), labels, "gz")
        assert len(zipped) == rows
        assert zipped.examples == plain.examples


def test_glue_qqp_tsv_undoes_csv_quoting():
    split = _load("glue_qqp_tsv", "qqp/glue_train.tsv", QQP)
    assert len(split) == 10
    assert [e.label for e in split.examples] == [0] * 5 + [1] * 5
    first = split.examples[0]
    assert first.uid == "117667"
    assert first.meta == {"qid1": "191421", "qid2": "191422"}
    assert first.text_b == (
        'Is it racist to say random Japanese words to a person who "looks East Asian" but is '
        "not? Is it ok for said person to get angry because of this?"
    )
    assert split.examples[5].text_a == "Can I develope mobile apps with c++?"


def test_paws_tsv_decodes_bytes_literals():
    split = _load("paws_tsv", "paws_qqp/dev_and_test.tsv", QQP)
    assert len(split) == 11
    first = split.examples[0]
    assert first.uid == "1" and first.meta == {"id": "1"}
    assert first.text_a.startswith("What were the major effects of the cambodia earthquake")
    assert not first.text_a.startswith("b'")
    # b"..." (double-quoted) literal holding an apostrophe
    assert split.examples[1].text_a.startswith("The guy I 'm dating never texts me")
    # \xcf\x80 inside the literal is UTF-8 for pi
    assert split.examples[-1].uid == "571"
    assert "-\u03c0/4 ?" in split.examples[-1].text_a
    assert [e.uid for e in split.examples if e.label == 1] == ["10"]


def test_fever_nli_jsonl_claim_then_evidence():
    split = _load("fever_nli_jsonl", "fever/fever_nli.jsonl", FEVER)
    assert len(split) == 8
    first = split.examples[0]
    assert first.uid == "54253" and first.meta == {"id": "54253"}  # integer id kept as text
    assert first.text_a == "Daggering is associated with the genre of death metal ."
    assert first.text_b.startswith("It is of recent origin")
    assert first.label == FEVER.index("REFUTES")


def test_fever_symmetric_v1():
    split = _load("fever_symmetric_v1", "fever_symmetric/fever_symmetric_generated.jsonl", FEVER)
    assert len(split) == 10
    third = split.examples[2]
    assert third.uid == "1118970000004"
    assert third.text_a == "Telemundo is a Spanish-language television network ."
    assert "English-language terrestrial television network" in third.text_b
    assert third.label == FEVER.index("REFUTES")


def test_fever_symmetric_v2():
    split = _load("fever_symmetric_v2", "fever_symmetric/fever_symmetric_test.jsonl", FEVER)
    assert len(split) == 10
    first = split.examples[0]
    assert first.uid == "7208"
    assert first.text_a == "Colombiana is a French film ."
    assert first.text_b.startswith("Colombiana is a 2011 French action film")
    assert first.label == FEVER.index("SUPPORTS")


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_custom_with_column_mapping(ext):
    columns = ColumnMap(text_a="first", text_b="second", label="verdict", id="pair_id")
    split = _load("custom", f"custom/nli_pairs.{ext}", MNLI, columns=columns)
    assert [e.uid for e in split.examples] == [f"mnli-dev-{i}" for i in range(10, 18)]
    # A quoted CSV field with commas inside it comes back whole.
    assert split.examples[0].text_a.startswith("The most important directions are simply up")
    assert split.examples[0].text_a.endswith("through the wall to the new town.")
    assert split.examples[3].text_a == "You and your friends are not welcome here, said Severn."
    assert [MNLI[e.label] for e in split.examples] == ["contradiction"] * 3 + [
        "entailment",
        "neutral",
    ] + ["entailment"] * 3


def test_custom_single_sentence_without_text_b():
    split = _load("custom", "custom/claims.csv", FEVER)
    assert len(split) == 8
    assert all(e.text_b == "" for e in split.examples)
    assert split.examples[0].text_a == "Brad Wilk helped co-found Rage in 1991 ."
    assert split.examples[0].label == FEVER.index("REFUTES")
    assert split.examples[0].uid == "2"  # no id column: the line number


def test_eval_label_names():
    assert eval_label_names("hans", MNLI) == ("entailment", "non-entailment")
    assert eval_label_names("paws", QQP) == ("0", "1")
    assert eval_label_names("fever_symmetric", FEVER) == FEVER
    assert eval_label_names("accuracy", MNLI) == MNLI


def test_max_examples_is_a_seeded_sample_in_file_order():
    full = _load("hans_tsv", "hans/heuristics_evaluation_set.txt", HANS)
    source = SourceSpec(
        format="hans_tsv", path=str(FIXTURES / "hans/heuristics_evaluation_set.txt")
    )
    a = load_split(source, HANS, "x", max_examples=8, seed=3)
    b = load_split(source, HANS, "x", max_examples=8, seed=3)
    c = load_split(source, HANS, "x", max_examples=8, seed=4)
    assert len(a) == 8
    assert a.examples == b.examples
    assert a.examples != c.examples
    order = [full.examples.index(e) for e in a.examples]
    assert order == sorted(order)
    assert load_split(source, HANS, "x", max_examples=500).examples == full.examples


def test_repeated_ids_are_numbered(tmp_path):
    lines = (FIXTURES / "fever/fever_nli.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "fever.jsonl"
    path.write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n", encoding="utf-8")
    split = load_split(SourceSpec(format="fever_nli_jsonl", path=str(path)), FEVER, "train")
    assert [e.uid for e in split.examples] == ["54253", "204361", "54253#2"]


def test_bad_arguments_are_refused():
    source = SourceSpec(format="mnli_dev_tsv", path=str(FIXTURES / "mnli/dev_matched.tsv"))
    with pytest.raises(ValueError, match="max_examples"):
        load_split(source, MNLI, "dev", max_examples=0)
    with pytest.raises(ValueError, match="label_names"):
        load_split(source, ("entailment", "entailment"), "dev")


def test_every_spec_format_has_a_reader():
    from typing import get_args

    from srcore.data.formats import FILE_FORMATS
    from srcore.jobspec.spec import FormatName

    assert set(get_args(FormatName)) == set(FILE_FORMATS) | {"custom"}

"""Bad files: every error names the file, the line and the problem.

The broken files are made here from the real fixture rows, one defect at a time.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pytest

from srcore.data.loaders import DataFormatError, load_split, resolve_data_path
from srcore.jobspec.spec import ColumnMap, SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
MNLI = ("contradiction", "entailment", "neutral")
FEVER = ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO")
HANS = ("entailment", "non-entailment")


def _copy(rel: str, tmp_path: Path, name: str | None = None) -> tuple[Path, list[str]]:
    lines = (FIXTURES / rel).read_text(encoding="utf-8").split("\n")
    return tmp_path / (name or Path(rel).name), lines


def _error(fmt: str, path: Path, labels, **kw) -> str:
    with pytest.raises(DataFormatError) as info:
        load_split(SourceSpec(format=fmt, path=str(path), **kw), labels, "bad")
    return str(info.value)


def test_missing_column_names_the_header_line(tmp_path):
    path, lines = _copy("mnli/glue_train.tsv", tmp_path)
    # Drop the gold_label column from every line.
    path.write_text("\n".join(line.rsplit("\t", 1)[0] for line in lines), encoding="utf-8")
    message = _error("glue_mnli_tsv", path, MNLI)
    assert str(path) in message
    assert "line 1" in message
    assert "missing column 'gold_label'" in message
    assert "'sentence1'" in message  # the header it did find is listed


def test_missing_field_in_a_json_line(tmp_path):
    path, lines = _copy("fever/fever_nli.jsonl", tmp_path)
    lines[2] = lines[2].replace('"claim"', '"Claim"')
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("fever_nli_jsonl", path, FEVER)
    assert f"file '{path}', line 3: missing field 'claim'" in message


def test_missing_field_in_a_pair_json_entry_names_its_line(tmp_path):
    path, lines = _copy("mnli/train.json", tmp_path)
    key_line = lines.index('    "5": {') + 1
    assert lines[key_line].strip().startswith('"text_a"')
    lines[key_line] = lines[key_line].replace('"text_a"', '"premise"')
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("pair_json", path, MNLI)
    assert f"line {key_line}:" in message  # the line of the entry's key, 1-based
    assert "missing field 'text_a'" in message and str(path) in message


def test_unknown_label_lists_the_allowed_ones(tmp_path):
    path, lines = _copy("mnli/dev_matched.tsv", tmp_path)
    fields = lines[3].split("\t")
    fields[3] = "maybe"
    lines[3] = "\t".join(fields)
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("mnli_dev_tsv", path, MNLI)
    assert str(path) in message and "line 4" in message
    assert "unknown label 'maybe'" in message
    assert "'contradiction', 'entailment', 'neutral'" in message


def test_unknown_label_after_label_map_says_so():
    message = _error(
        "hans_tsv",
        FIXTURES / "hans/heuristics_evaluation_set.txt",
        MNLI,
        label_map={"non-entailment": "not_entailment"},
    )
    assert "line 2" in message
    assert "unknown label 'not_entailment' (renamed from 'non-entailment' by label_map)" in message


def test_hans_file_read_with_task_labels_fails_clearly():
    message = _error("hans_tsv", FIXTURES / "hans/heuristics_evaluation_set.txt", MNLI)
    assert "line 2" in message and "unknown label 'non-entailment'" in message


@pytest.mark.parametrize(
    ("fmt", "name", "columns"),
    [
        ("glue_mnli_tsv", "train.tsv", None),
        ("glue_qqp_tsv", "train.tsv", None),
        ("pair_json", "train.json", None),
        ("fever_symmetric_v1", "sym.jsonl", None),
        ("custom", "data.csv", ColumnMap()),
    ],
)
def test_empty_file(tmp_path, fmt, name, columns):
    path = tmp_path / name
    path.write_bytes(b"")
    kw = {"columns": columns} if columns else {}
    message = _error(fmt, path, MNLI, **kw)
    assert f"file '{path}', line 1: " in message
    assert "empty" in message


def test_header_without_rows(tmp_path):
    path, lines = _copy("hans/heuristics_evaluation_set.txt", tmp_path)
    path.write_text(lines[0] + "\n", encoding="utf-8")
    message = _error("hans_tsv", path, HANS)
    assert f"file '{path}', line 2: no data rows after the header" in message


def test_non_utf8_bytes_name_the_line(tmp_path):
    path, lines = _copy("hans/heuristics_evaluation_set.txt", tmp_path)
    raw = [line.encode("utf-8") for line in lines]
    raw[5] = raw[5].replace(b"The ", b"Th\xe9 ", 1)  # a Latin-1 byte in line 6
    path.write_bytes(b"\n".join(raw))
    message = _error("hans_tsv", path, HANS)
    assert str(path) in message and "line 6" in message
    assert "not valid UTF-8" in message and "0xe9" in message


def test_latin1_csv_is_refused_with_its_line(tmp_path):
    path = tmp_path / "claims.csv"
    text = (FIXTURES / "custom/claims.csv").read_text(encoding="utf-8")
    path.write_bytes(text.encode("latin-1"))  # Simón Bolívar rows are on lines 6-8
    message = _error("custom", path, FEVER, columns=ColumnMap())
    assert f"file '{path}', line 6: not valid UTF-8" in message


def test_gzip_file_with_bad_utf8(tmp_path):
    path, lines = _copy("mnli/dev_matched.tsv", tmp_path, "dev.tsv.gz")
    raw = [line.encode("utf-8") for line in lines]
    raw[2] = b"\x80" + raw[2]
    path.write_bytes(gzip.compress(b"\n".join(raw)))
    message = _error("mnli_dev_tsv", path, MNLI)
    assert f"file '{path}', line 3: not valid UTF-8" in message


def test_truncated_gzip(tmp_path):
    data = gzip.compress((FIXTURES / "mnli/dev_matched.tsv").read_bytes())
    path = tmp_path / "dev.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    message = _error("mnli_dev_tsv", path, MNLI)
    assert str(path) in message and "gzip" in message and "line" in message


def test_broken_json_line(tmp_path):
    path, lines = _copy("fever_symmetric/fever_symmetric_test.jsonl", tmp_path)
    lines[3] = lines[3][:-20]  # cut off the end of line 4
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("fever_symmetric_v2", path, FEVER)
    assert f"file '{path}', line 4: not a valid JSON line" in message


def test_json_line_that_is_not_an_object(tmp_path):
    path, lines = _copy("fever_symmetric/fever_symmetric_generated.jsonl", tmp_path)
    lines[1] = '["claim", "evidence"]'
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("fever_symmetric_v1", path, FEVER)
    assert "line 2: expected a JSON object, found an array" in message


def test_broken_pair_json(tmp_path):
    path, lines = _copy("qqp/train.json", tmp_path)
    lines[7] = lines[7].rstrip(",")  # drop a comma between two fields
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("pair_json", path, ("0", "1"))
    # The parser notices at the next field, line 9.
    assert f"file '{path}', line 9: not valid JSON: Expecting ',' delimiter" in message


def test_row_with_wrong_number_of_fields(tmp_path):
    path, lines = _copy("mnli/glue_train.tsv", tmp_path)
    lines[9] = lines[9] + "\textra"
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("glue_mnli_tsv", path, MNLI)
    assert f"file '{path}', line 10: expected 12 tab-separated fields" in message


def test_text_field_of_wrong_type(tmp_path):
    path, lines = _copy("fever/fever_nli.jsonl", tmp_path)
    lines[4] = lines[4].replace('"evidence": "', '"evidence": null, "x": "')
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("fever_nli_jsonl", path, FEVER)
    assert "line 5: field 'evidence' must be a string, found null" in message


def test_broken_bytes_literal(tmp_path):
    path, lines = _copy("paws_qqp/dev_and_test.tsv", tmp_path)
    fields = lines[2].split("\t")
    fields[1] = fields[1][:-1]  # remove the closing quote
    lines[2] = "\t".join(fields)
    path.write_text("\n".join(lines), encoding="utf-8")
    message = _error("paws_tsv", path, ("0", "1"))
    assert f"file '{path}', line 3: field 'sentence1': unterminated bytes literal" in message


def test_custom_explicit_text_b_must_exist():
    columns = ColumnMap(text_a="text_a", text_b="evidence", label="label")
    message = _error("custom", FIXTURES / "custom/claims.csv", FEVER, columns=columns)
    assert "line 1" in message and "missing column 'evidence'" in message


def test_custom_unknown_extension(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("a,b\n", encoding="utf-8")
    message = _error("custom", path, MNLI, columns=ColumnMap())
    assert str(path) in message and ".csv" in message and "'.txt'" in message


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere" / "train.tsv"
    message = _error("glue_mnli_tsv", path, MNLI)
    assert str(path) in message and "no such file" in message
    with pytest.raises(DataFormatError, match=r"sample:mnli/nope\.json"):
        resolve_data_path("sample:mnli/nope.json")
    with pytest.raises(DataFormatError, match="inside the bundled sample data"):
        resolve_data_path("sample:../tasks.py")


def test_errors_are_value_errors_and_pickle(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    with pytest.raises(ValueError) as info:
        load_split(SourceSpec(format="fever_symmetric_v2", path=str(path)), FEVER, "x")
    error = info.value
    assert isinstance(error, DataFormatError)
    assert error.source == str(path) and error.line == 2
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.line == 2


@pytest.mark.parametrize("tail", ["", "d,e,entailment\nf,g,neutral\n", 'h,"i",neutral\n'])
def test_an_unterminated_quote_names_the_line_where_it_opened(tmp_path, tail):
    path = tmp_path / "pairs.csv"
    path.write_text(
        'text_a,text_b,label\na,b,entailment\nc,"never closed,neutral\n' + tail, "utf-8"
    )
    source = SourceSpec(format="custom", path=str(path), columns=ColumnMap())
    with pytest.raises(DataFormatError) as info:
        load_split(source, ("entailment", "neutral"), "t")
    message = str(info.value)
    assert "line 3:" in message and "unterminated quote" in message, message

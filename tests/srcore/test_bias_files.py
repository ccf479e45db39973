import json
from pathlib import Path

import numpy as np
import pytest

from srcore.bias import BiasFileError, load_probability_file
from srcore.data.examples import Example, Split

LABELS = ("contradiction", "entailment", "neutral")


def _split(n: int = 5) -> Split:
    examples = [Example(str(i), f"premise {i}", f"hypothesis {i}", i % 3) for i in range(n)]
    return Split("train", examples, LABELS, "memory")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, n: int = 5) -> str:
    with pytest.raises(BiasFileError) as info:
        load_probability_file(path, _split(n), LABELS)
    message = str(info.value)
    assert str(path) in message
    return message


def test_tsv_full_coverage(tmp_path):
    rows = [f"{i}\t0.2\t0.5\t0.3" for i in range(5)]
    path = _write(tmp_path, "b.tsv", "id\tcontradiction\tentailment\tneutral\n" + "\n".join(rows))
    result = load_probability_file(path, _split(), LABELS)
    assert result.probs.dtype == np.float32
    np.testing.assert_allclose(result.probs, np.tile([0.2, 0.5, 0.3], (5, 1)), atol=1e-7)
    assert result.report["covered"] == 5 and result.report["uncovered"] == 0
    assert result.report["coverage"] == 1.0 and result.report["format"] == "tsv"
    assert result.report["mean_gold_prob"] == pytest.approx((0.2 + 0.5 + 0.3 + 0.2 + 0.5) / 5)


def test_jsonl_list_and_keyed_forms(tmp_path):
    lines = [
        json.dumps({"id": 0, "probs": [0.7, 0.2, 0.1]}),
        json.dumps({"neutral": 0.6, "id": "1", "entailment": 0.3, "contradiction": 0.1}),
        "",
    ]
    path = _write(tmp_path, "b.jsonl", "\n".join(lines))
    result = load_probability_file(path, _split(), LABELS)
    np.testing.assert_allclose(result.probs[0], [0.7, 0.2, 0.1], atol=1e-7)
    np.testing.assert_allclose(result.probs[1], [0.1, 0.3, 0.6], atol=1e-7)
    np.testing.assert_allclose(result.probs[2:], 1 / 3, atol=1e-7)


def test_partial_coverage_is_reported_and_filled_uniform(tmp_path):
    text = "id,contradiction,entailment,neutral\n0,1,0,0\n2,0,1,0\n4,0,0,1\n99,0.5,0.5,0\n"
    path = _write(tmp_path, "b.csv", text)
    result = load_probability_file(path, _split(), LABELS)
    report = result.report
    assert (report["rows"], report["covered"], report["uncovered"]) == (4, 3, 2)
    assert report["coverage"] == pytest.approx(0.6)
    assert report["unmatched_rows"] == 1
    assert report["accuracy_covered"] == pytest.approx(1 / 3)  # only id 0 (gold 0) is right
    np.testing.assert_allclose(result.probs[[1, 3]], 1 / 3, atol=1e-7)
    np.testing.assert_allclose(result.probs[2], [0, 1, 0])


def test_teacher_fill_gold_is_one_hot(tmp_path):
    path = _write(tmp_path, "t.csv", "id,contradiction,entailment,neutral\n0,0.2,0.5,0.3\n")
    result = load_probability_file(path, _split(), LABELS, fill="gold")
    np.testing.assert_array_equal(result.probs[1], [0, 1, 0])  # example 1: gold entailment
    np.testing.assert_array_equal(result.probs[2], [0, 0, 1])
    assert result.report["fill"] == "gold"


def test_row_sum_within_tolerance_is_renormalised(tmp_path):
    path = _write(tmp_path, "b.csv", "id,contradiction,entailment,neutral\n0,0.2,0.5,0.3005\n")
    result = load_probability_file(path, _split(), LABELS)
    assert result.probs[0].sum() == pytest.approx(1.0, abs=1e-6)


def test_wrong_label_order(tmp_path):
    path = _write(tmp_path, "b.tsv", "id\tentailment\tneutral\tcontradiction\n0\t1\t0\t0\n")
    message = _error(path)
    assert "line 1" in message and "different order" in message
    assert "expected id,contradiction,entailment,neutral" in message
    assert "got id,entailment,neutral,contradiction" in message


def test_wrong_label_names(tmp_path):
    path = _write(tmp_path, "b.csv", "id,0,1\n0,0.5,0.5\n")
    message = _error(path)
    assert "header does not match the task labels" in message and "got id,0,1" in message


def test_bad_row_sum_names_the_line(tmp_path):
    text = "id,contradiction,entailment,neutral\n0,0.2,0.5,0.3\n1,0.2,0.4,0.3\n"
    message = _error(_write(tmp_path, "b.csv", text))
    assert "line 3" in message and "sum to 0.9" in message


def test_nan_in_table_and_jsonl(tmp_path):
    text = "id,contradiction,entailment,neutral\n0,nan,0.5,0.5\n"
    message = _error(_write(tmp_path, "b.csv", text))
    assert "line 2" in message and "not a finite number" in message
    path = _write(
        tmp_path,
        "b.jsonl",
        '{"id": "0", "probs": [0.5, 0.5, 0]}\n{"id": "1", "probs": [NaN, 0.5, 0.5]}\n',
    )
    message = _error(path)
    assert "line 2" in message and "value 1" in message and "not a finite number" in message


def test_out_of_range_and_not_a_number(tmp_path):
    text = "id,contradiction,entailment,neutral\n0,1.5,-0.5,0\n"
    assert "outside [0, 1]" in _error(_write(tmp_path, "a.csv", text))
    text = "id,contradiction,entailment,neutral\n0,high,0.5,0.5\n"
    assert "value 1 is 'high', not a number" in _error(_write(tmp_path, "b.csv", text))


def test_duplicate_id(tmp_path):
    text = "id,contradiction,entailment,neutral\n1,1,0,0\n2,1,0,0\n1,0,1,0\n"
    message = _error(_write(tmp_path, "b.csv", text))
    assert "line 4" in message and "duplicate id '1'" in message and "first on line 2" in message


def test_zero_coverage(tmp_path):
    text = "id,contradiction,entailment,neutral\nx1,1,0,0\nx2,1,0,0\n"
    message = _error(_write(tmp_path, "b.csv", text))
    assert "none of its 2 ids matches a training example id" in message
    assert "['x1', 'x2']" in message and "['0', '1', '2']" in message


def test_jsonl_shape_and_key_problems(tmp_path):
    path = _write(tmp_path, "a.jsonl", '{"id": 0, "probs": [0.5, 0.5]}\n')
    assert "line 1: 2 probabilities, expected 3" in _error(path)
    path = _write(tmp_path, "b.jsonl", '{"id": 0, "entailment": 1.0, "neutral": 0.0}\n')
    message = _error(path)
    assert "missing ['contradiction']" in message
    path = _write(tmp_path, "c.jsonl", '{"id": 0, "probs": [1, 0, 0]}\n{"id": 1, "probs": [1, 0\n')
    assert "line 2: not valid JSON" in _error(path)
    path = _write(tmp_path, "d.jsonl", '{"probs": [1, 0, 0]}\n')
    assert 'missing "id"' in _error(path)


def test_columns_and_encoding(tmp_path):
    text = "id,contradiction,entailment,neutral\n0,1,0,0\n1,1,0\n"
    assert "line 3: 3 columns, the header has 4" in _error(_write(tmp_path, "a.csv", text))
    path = tmp_path / "b.csv"
    path.write_bytes(b"id,contradiction,entailment,neutral\n0,1,0,0\n1\xff,1,0,0\n")
    assert "line 3: not valid UTF-8" in _error(path)


def test_empty_missing_and_unknown_files(tmp_path):
    assert "empty file" in _error(_write(tmp_path, "a.csv", "\n"))
    assert "no probability rows" in _error(_write(tmp_path, "a.jsonl", "\n\n"))
    assert "no such file" in _error(tmp_path / "missing.tsv")
    assert "unknown file type" in _error(_write(tmp_path, "a.txt", "x"))


def test_npy_aligned_by_order(tmp_path):
    probs = np.tile([0.1, 0.6, 0.3], (5, 1))
    np.save(tmp_path / "b.npy", probs)
    result = load_probability_file(tmp_path / "b.npy", _split(), LABELS)
    np.testing.assert_allclose(result.probs, probs, atol=1e-7)
    assert result.report["covered"] == 5
    np.save(tmp_path / "c.npy", probs[:4])
    assert "expected numbers of shape (5, 3)" in _error(tmp_path / "c.npy")
    probs[3] = [0.5, 0.6, 0.0]
    np.save(tmp_path / "d.npy", probs)
    assert "row 3" in _error(tmp_path / "d.npy")


def test_error_is_a_value_error():
    assert issubclass(BiasFileError, ValueError)

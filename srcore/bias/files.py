"""User-supplied per-example probability files: bias probabilities, or conf_reg teacher
probabilities.

Everything is checked before any training starts, because a wrong file fails silently
otherwise: columns in another label order (HF `datasets` MNLI is entailment, neutral,
contradiction; ours is contradiction, entailment, neutral) still "work" and simply debias
against the wrong class. Every error names the file, the line and the problem.

Formats (by file extension):
- `.jsonl` / `.json`: one object per line, `{"id": ..., "probs": [p, ...]}` with the
  columns in task label order, or `{"id": ..., "<label>": p, ...}` naming every label.
- `.tsv` / `.csv`: a header `id,<label1>,<label2>,...` whose label columns must be the task
  labels in task order, then one row per example.
- `.npy`: an (N, C) array aligned with the training examples in order (no ids, so its row
  count must equal the training set's).

Rows are matched to training examples by `Example.uid`. Examples without a row get the
fill distribution: uniform by default, a neutral bias under which PoE and reweighting are
plain cross-entropy for that example. For a conf_reg teacher use `fill="gold"` (one-hot on
the gold label: conf_reg is then plain cross-entropy there; a uniform teacher would instead
pull the model towards "don't know").
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from srcore.bias.result import BiasResult, gold_indices, normalised_rows, summary
from srcore.data.examples import Split
from srcore.files import OutsideRootsError, read_confined

ROW_SUM_TOLERANCE = 1e-3
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".tsv": "tsv", ".csv": "csv", ".npy": "npy"}
Fill = Literal["uniform", "gold"]


class BiasFileError(ValueError):
    """A probability file cannot be used; the message names file, line and problem."""


Row = tuple[int, str, list[float]]  # (line number, example id, probabilities)


def _fail(path: Path, line: int | None, problem: str) -> BiasFileError:
    where = f"{path}: line {line}" if line is not None else str(path)
    return BiasFileError(f"{where}: {problem}")


def _check_probabilities(path: Path, line: int, values: list[Any], n_labels: int) -> list[float]:
    if len(values) != n_labels:
        raise _fail(path, line, f"{len(values)} probabilities, expected {n_labels} (one per label)")
    out: list[float] = []
    for column, value in enumerate(values, start=1):
        if isinstance(value, bool):
            raise _fail(path, line, f"value {column} is {value!r}, not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _fail(path, line, f"value {column} is {value!r}, not a number") from None
        if not math.isfinite(number):
            raise _fail(path, line, f"value {column} is {value!r}, not a finite number")
        if not 0.0 <= number <= 1.0:
            raise _fail(path, line, f"value {column} is {number}, outside [0, 1]")
        out.append(number)
    total = sum(out)
    if abs(total - 1.0) > ROW_SUM_TOLERANCE:
        raise _fail(
            path, line, f"probabilities sum to {total:.6g}, expected 1 (±{ROW_SUM_TOLERANCE})"
        )
    return out


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise _fail(path, line, "not valid UTF-8 text") from None


def _jsonl_rows(path: Path, text: str, labels: Sequence[str]) -> list[Row]:
    rows: list[Row] = []
    label_set = set(labels)
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _fail(path, line_no, f"not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise _fail(path, line_no, "expected a JSON object")
        uid = obj.get("id")
        if isinstance(uid, bool) or not isinstance(uid, str | int):
            raise _fail(path, line_no, 'missing "id" (a string or integer)')
        if "probs" in obj:
            values = obj["probs"]
            if not isinstance(values, list):
                raise _fail(path, line_no, '"probs" must be a list in task label order')
        else:
            keys = set(obj) - {"id"}
            if keys != label_set:
                missing = [name for name in labels if name not in keys]
                unknown = sorted(keys - label_set)
                raise _fail(
                    path,
                    line_no,
                    f'expected "probs" or one key per task label {list(labels)}; '
                    f"missing {missing}, unknown {unknown}",
                )
            values = [obj[name] for name in labels]
        probs = _check_probabilities(path, line_no, values, len(labels))
        rows.append((line_no, str(uid).strip(), probs))
    return rows


def _table_rows(path: Path, text: str, labels: Sequence[str], delimiter: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[Row] = []
    expected = ["id", *labels]
    for cells in reader:
        line_no = reader.line_num
        if not cells or not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            if header != expected:
                if header[:1] == ["id"] and sorted(header[1:]) == sorted(labels):
                    problem = "label columns are in a different order than the task labels"
                else:
                    problem = "header does not match the task labels"
                got = ",".join(header)
                raise _fail(path, line_no, f"{problem}: expected {','.join(expected)}; got {got}")
            continue
        if len(cells) != len(header):
            raise _fail(path, line_no, f"{len(cells)} columns, the header has {len(header)}")
        values = [c.strip() for c in cells[1:]]
        probs = _check_probabilities(path, line_no, values, len(labels))
        rows.append((line_no, cells[0].strip(), probs))
    if header is None:
        raise _fail(path, None, "empty file (expected a header id," + ",".join(labels) + ")")
    return rows


def _npy_probs(path: Path, data: bytes, train: Split, labels: Sequence[str]) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as err:
        raise _fail(path, None, f"not a readable .npy array ({err})") from None
    expected = (len(train), len(labels))
    if array.ndim != 2 or array.shape != expected or array.dtype.kind not in "fiu":
        raise _fail(
            path,
            None,
            f"array of shape {array.shape} ({array.dtype}); expected numbers of shape {expected} "
            "(one row per training example, in order; columns in task label order)",
        )
    array = array.astype(np.float64)
    bad_rows = np.flatnonzero(
        ~np.isfinite(array).all(axis=1)
        | (array < 0).any(axis=1)
        | (array > 1).any(axis=1)
        | (np.abs(array.sum(axis=1) - 1.0) > ROW_SUM_TOLERANCE)
    )
    if bad_rows.size:
        i = int(bad_rows[0])
        raise _fail(
            path,
            None,
            f"row {i} {array[i].tolist()} is not a probability distribution "
            f"(finite, in [0, 1], sum 1 ±{ROW_SUM_TOLERANCE}); {bad_rows.size} such rows",
        )
    return array


def _check_duplicates(path: Path, rows: list[Row]) -> None:
    first_line: dict[str, int] = {}
    for line_no, uid, _ in rows:
        if uid in first_line:
            raise _fail(path, line_no, f"duplicate id {uid!r} (first on line {first_line[uid]})")
        first_line[uid] = line_no


def load_probability_file(
    path: str | Path,
    train: Split,
    labels: Sequence[str],
    *,
    fill: Fill = "uniform",
) -> BiasResult:
    """Validated (N, C) probabilities for `train.examples` from a user file; see module doc."""
    path = Path(path)
    labels = tuple(labels)
    if fill not in ("uniform", "gold"):
        raise ValueError(f"fill must be 'uniform' or 'gold', got {fill!r}")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise _fail(path, None, f"unknown file type; use one of {', '.join(sorted(FORMATS))}")
    if not path.is_file():
        raise _fail(path, None, "no such file")
    try:
        data = read_confined(path)  # inside a worker's confinement: checked once opened
    except OutsideRootsError as exc:
        raise _fail(path, None, f"not read: {exc.args[0].removeprefix(f'{path}: ')}") from None
    except OSError as exc:
        raise _fail(path, None, f"cannot read the file ({exc.strerror})") from None
    gold = gold_indices(train, labels)
    n, c = len(train), len(labels)
    filled = np.full((n, c), 1.0 / c) if fill == "uniform" else np.eye(c)[gold]
    covered = np.zeros(n, dtype=bool)
    unmatched = 0
    if fmt == "npy":
        probs = _npy_probs(path, data, train, labels)
        covered[:] = True
        n_rows = n
    else:
        text = _decode(path, data)
        if fmt == "jsonl":
            rows = _jsonl_rows(path, text, labels)
        else:
            rows = _table_rows(path, text, labels, "\t" if fmt == "tsv" else ",")
        if not rows:
            raise _fail(path, None, "no probability rows")
        _check_duplicates(path, rows)
        positions: dict[str, list[int]] = {}
        for i, ex in enumerate(train.examples):
            positions.setdefault(ex.uid, []).append(i)
        probs = filled.copy()
        for _, uid, values in rows:
            where = positions.get(uid)
            if where is None:
                unmatched += 1
                continue
            probs[where] = values
            covered[where] = True
        n_rows = len(rows)
        if not covered.any():
            file_ids = [r[1] for r in rows[:3]]
            train_ids = [e.uid for e in train.examples[:3]]
            raise _fail(
                path,
                None,
                f"none of its {n_rows} ids matches a training example id (file ids look like "
                f"{file_ids}, training ids like {train_ids})",
            )
    probs32 = normalised_rows(probs)
    n_covered = int(covered.sum())
    hits = probs32[covered].argmax(axis=1) == gold[covered]
    report = {
        "kind": "file",
        "source": "file",
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": fmt,
        "rows": n_rows,
        "covered": n_covered,
        "uncovered": n - n_covered,
        "coverage": round(n_covered / n, 6) if n else 0.0,
        "unmatched_rows": unmatched,
        "fill": fill,
        **summary(probs32, gold, labels),
        "mean_gold_prob_covered": round(float(probs32[covered, gold[covered]].mean()), 6),
        "accuracy_covered": round(float(hits.mean()), 6),
    }
    return BiasResult(probs=probs32, report=report)

"""The bundled HANS set split into a training half and an evaluation half, for the paper's OOD
upper bound (MNLI + HANS training data) when only the evaluation set is at hand.

The official HANS training set is a second sample of the same generator; here only the
regenerated evaluation set is bundled, so it is split per subcase (each of the 30 subcases
keeps half its distinct premise/hypothesis pairs in each half, a fixed seed choosing which) and
every row of a pair goes where its pair goes, so no pair is in both halves. The halves are
bundled as `sample:hans/train_half.tsv.gz` and `sample:hans/eval_half.tsv.gz` (HANS TSV,
columns the `hans_tsv` reader uses); `python -m srcore.data.hans_split` writes them again, and a
test checks the bundled files are exactly what this module makes.

Use them together: the train half in `data.ood_training.sources` (with
`label_map: {"non-entailment": "contradiction"}`) and the eval half as `data.ood.hans`, so the
upper bound is measured only on pairs it never trained on.
"""

from __future__ import annotations

import argparse
import gzip
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from srcore.data.errors import DataFormatError
from srcore.data.formats import iter_lines

SPLIT_SEED = 0
COLUMNS = ("gold_label", "sentence1", "sentence2", "pairID", "heuristic", "subcase", "template")
SOURCE = "hans/heuristics_evaluation_set.txt.gz"
TRAIN_HALF = "hans/train_half.tsv.gz"
EVAL_HALF = "hans/eval_half.tsv.gz"

Row = dict[str, str]


def read_hans_rows(path: Path) -> list[Row]:
    """The rows of an official HANS TSV file (gzipped or not), as {column: text}."""
    lines = iter_lines(path)
    try:
        _, header = next(lines)
    except StopIteration as exc:
        raise DataFormatError("empty file: no header row", path) from exc
    names = header.split("\t")
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DataFormatError(f"not a HANS TSV file: no column(s) {missing}", path)
    rows = []
    for lineno, line in lines:
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(names):
            problem = f"{len(fields)} fields, the header has {len(names)}"
            raise DataFormatError(problem, path, lineno)
        rows.append(dict(zip(names, fields, strict=True)))
    return rows


def pair_of(row: Row) -> tuple[str, str]:
    return row["sentence1"], row["sentence2"]


def split_hans(rows: Sequence[Row], seed: int = SPLIT_SEED) -> tuple[list[Row], list[Row]]:
    """(train half, eval half), each in file order. Per subcase (in order of first
    appearance), the distinct pairs not already placed by an earlier subcase are shuffled by a
    generator seeded with (seed, subcase) and the first half of them (rounded down) go to
    training; every row follows its pair."""
    pairs_by_subcase: dict[str, dict[tuple[str, str], None]] = {}
    for row in rows:
        pairs_by_subcase.setdefault(row["subcase"], {}).setdefault(pair_of(row), None)
    to_train: dict[tuple[str, str], bool] = {}
    for subcase, pairs in pairs_by_subcase.items():
        fresh = [p for p in pairs if p not in to_train]
        random.Random(f"{seed}:{subcase}").shuffle(fresh)
        half = len(fresh) // 2
        for i, pair in enumerate(fresh):
            to_train[pair] = i < half
    train = [r for r in rows if to_train[pair_of(r)]]
    evaluation = [r for r in rows if not to_train[pair_of(r)]]
    return train, evaluation


def shared_pairs(a: Iterable[Row], b: Iterable[Row]) -> set[tuple[str, str]]:
    """The premise/hypothesis pairs both row sets hold."""
    return {pair_of(r) for r in a} & {pair_of(r) for r in b}


def hans_tsv_bytes(rows: Iterable[Row]) -> bytes:
    """Rows as HANS TSV (COLUMNS only), gzipped byte-for-byte reproducibly (no time stamp)."""
    lines = ["\t".join(COLUMNS)] + ["\t".join(r[c] for c in COLUMNS) for r in rows]
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0)


def write_halves(source: Path, out_dir: Path, seed: int = SPLIT_SEED) -> tuple[Path, Path]:
    """Split `source` and write the two halves under `out_dir` (as the bundled names)."""
    train, evaluation = split_hans(read_hans_rows(source), seed)
    paths = out_dir / Path(TRAIN_HALF).name, out_dir / Path(EVAL_HALF).name
    for path, rows in zip(paths, (train, evaluation), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hans_tsv_bytes(rows))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    from srcore.data.loaders import sample_data_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=sample_data_root() / SOURCE)
    parser.add_argument("--out", type=Path, default=sample_data_root() / Path(TRAIN_HALF).parent)
    parser.add_argument("--seed", type=int, default=SPLIT_SEED)
    args = parser.parse_args(argv)
    for path in write_halves(args.source, args.out, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

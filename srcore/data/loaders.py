"""Load a split of a data set, in the data set's own format, as a `Split` of `Example`s.

Formats (`SourceSpec.format`): file → text_a / text_b / label, uid; meta

- `glue_mnli_tsv`: official GLUE MNLI TSV → sentence1 / sentence2 / gold_label, pairID;
  pairID, promptID, genre
- `mnli_dev_tsv`: index, premise, hypothesis, gold_label, ... → premise / hypothesis /
  gold_label, index
- `pair_json`: `{"0": {"text_a", "text_b", "label"}}`, in numeric key order → the key
- `hans_tsv`: official HANS TSV → sentence1 / sentence2 / gold_label, pairID; heuristic,
  subcase, pairID, template
- `glue_qqp_tsv`: official GLUE QQP TSV → question1 / question2 / is_duplicate, id; qid1, qid2
- `paws_tsv`: PAWS TSV → sentence1 / sentence2 (`b'...'` literals decoded) / label, id; id
- `fever_nli_jsonl`: FEVER NLI-style JSONL → claim / evidence / gold_label, id (else line); id
- `fever_symmetric_v1`: FEVER-Symmetric v0.1 JSONL → claim / evidence_sentence / label, id; id
- `fever_symmetric_v2`: FEVER-Symmetric v0.2 JSONL → claim / evidence / gold_label, id; id
- `custom`: .csv, .tsv or .jsonl/.json (JSON Lines) with `SourceSpec.columns`; without a
  text_b column (left at its default name) it is a single-sentence task with text_b "".

A uid without an id field is the line number. Any file may be gzipped (recognised by
content, not name). MNLI rows whose gold label is `-` (the annotators disagreed) are skipped,
as GLUE does. `SourceSpec.label_map` renames raw labels before they are checked against
`label_names`; `Example.label` indexes `label_names`. Ids repeated inside a file get `#2`,
`#3`, ... appended so every uid in a split is unique.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from importlib import resources
from pathlib import Path, PurePosixPath

from srcore.data.errors import DataFormatError, DataSourceUnavailable
from srcore.data.examples import Example, Split
from srcore.data.formats import (
    FILE_FORMATS,
    ExampleBuilder,
    custom_layout,
    custom_reader,
    read_records,
)
from srcore.jobspec.spec import SourceSpec

__all__ = [
    "SAMPLE_PREFIX",
    "DataFormatError",
    "DataSourceUnavailable",
    "eval_label_names",
    "load_split",
    "resolve_data_path",
    "sample_data_root",
]

SAMPLE_PREFIX = "sample:"

# OOD sets with a label space of their own (the evaluation maps predictions onto it).
_EVAL_LABELS: dict[str, tuple[str, ...]] = {
    "hans": ("entailment", "non-entailment"),
    "paws": ("0", "1"),
}


def eval_label_names(metric: str, task_labels: Sequence[str]) -> tuple[str, ...]:
    """The labels an evaluation set's file uses: HANS is 2-way, PAWS 0/1, others the task's."""
    return _EVAL_LABELS.get(metric, tuple(task_labels))


def sample_data_root() -> Path:
    """The folder of the data files bundled with srnet (`sample:` paths)."""
    return Path(str(resources.files("srcore").joinpath("sample_data")))


def resolve_data_path(path: str) -> Path:
    """`sample:<relative path>` → a bundled file; any other path → the user's file.

    Raises DataFormatError naming the file when it does not exist.
    """
    if path.startswith(SAMPLE_PREFIX):
        relative = path[len(SAMPLE_PREFIX) :]
        parts = PurePosixPath(relative).parts
        if not relative or relative.startswith("/") or ".." in parts:
            raise DataFormatError(
                "a `sample:` path names a file inside the bundled sample data, "
                "e.g. `sample:mnli/train.json`",
                path,
            )
        resolved = sample_data_root().joinpath(*parts)
        if not resolved.is_file():
            # The message names the file as the spec wrote it: a job error never shows where
            # srnet is installed on the server.
            raise DataFormatError(
                "no such bundled sample file; bundled files are listed in "
                "srcore/sample_data/README.md",
                path,
            )
        return resolved
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise DataFormatError("no such file", resolved)
    if not resolved.is_file():
        raise DataFormatError("not a regular file (a directory?)", resolved)
    return resolved


def load_split(
    source: SourceSpec,
    label_names: Sequence[str],
    name: str,
    max_examples: int | None = None,
    seed: int = 0,
) -> Split:
    """Read one split in its own format; every label is checked against `label_names`.

    `max_examples` keeps a seeded random sample of that many examples (the same seed gives the
    same rows), in file order.
    """
    labels = tuple(label_names)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"label_names must be at least two distinct labels, got {labels}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be positive, got {max_examples}")
    if source.hub is not None:
        from srcore.data.hub import load_hub_examples  # datasets is heavy: import on use

        examples, origin = load_hub_examples(source, labels)
    else:
        assert source.path is not None  # SourceSpec guarantees path or hub
        path = resolve_data_path(source.path)
        examples = _load_file(source, path, labels)
        origin = str(path)
    return Split(
        name=name,
        examples=sample_examples(examples, max_examples, seed),
        label_names=labels,
        origin=origin,
    )


def _load_file(source: SourceSpec, path: Path, labels: tuple[str, ...]) -> list[Example]:
    if source.format == "custom":
        reader, layout = custom_reader(path), custom_layout(source.columns)
    elif source.format in FILE_FORMATS:
        reader, layout = FILE_FORMATS[source.format]
    else:  # a FormatName added to the spec without a reader here
        raise DataFormatError(f"no reader for format {source.format!r}", path)
    builder = ExampleBuilder(layout, labels, source.label_map, path)
    return builder.build(read_records(reader, path, layout))


def sample_examples(examples: list[Example], max_examples: int | None, seed: int) -> list[Example]:
    """A seeded sample of `max_examples` examples, kept in their original order."""
    if max_examples is None or max_examples >= len(examples):
        return examples
    chosen = random.Random(seed).sample(range(len(examples)), max_examples)
    return [examples[i] for i in sorted(chosen)]

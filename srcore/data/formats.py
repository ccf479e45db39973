"""Readers for the data sets' own file formats, and the conversion of their rows to `Example`s.

Every file is read as bytes, line by line, and each line is decoded as UTF-8 on its own, so an
encoding error names its line. Gzip files (any format) are recognised by their magic bytes and
decompressed on the fly. The MNLI, HANS and PAWS TSV files are split on tabs with no quoting,
as they are written (their sentences contain unbalanced `"` characters); GLUE's QQP TSV and
custom CSV/TSV files use standard CSV quoting.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from srcore.data.errors import DataFormatError
from srcore.data.examples import Example
from srcore.files import OutsideRootsError, open_confined
from srcore.jobspec.spec import ColumnMap

# tsv: split on tabs, no quoting; tsv_quoted / csv: standard CSV quoting ("" inside "...").
ReaderName = Literal["tsv", "tsv_quoted", "csv", "jsonl", "pair_json"]
Record = tuple[int | None, Mapping[str, Any]]  # (line number, fields)

_GZIP_MAGIC = b"\x1f\x8b"
# The MNLI convention: a `-` gold label means the annotators did not agree; GLUE drops these.
MNLI_UNLABELLED = frozenset({"-"})


@dataclass(frozen=True)
class Layout:
    """Where one format keeps the pair, the label, the example id and the extra fields."""

    text_a: str
    text_b: str | None  # None: a single-sentence task, text_b is ""
    label: str
    uid: tuple[str, ...] = ()  # the first field present is the id; none present: line number
    uid_required: bool = False
    meta: tuple[str, ...] = ()  # copied into Example.meta where present
    required_meta: tuple[str, ...] = ()
    optional_text_b: bool = False  # custom files: a missing text_b column means single-sentence
    skip_labels: frozenset[str] = frozenset()
    bytes_literals: bool = False  # PAWS writes sentences as Python bytes literals b'...'

    def required_fields(self) -> list[str]:
        fields = [self.text_a]
        if self.text_b is not None and not self.optional_text_b:
            fields.append(self.text_b)
        fields.append(self.label)
        fields.extend(self.required_meta)
        if self.uid_required:
            fields.append(self.uid[0])
        return list(dict.fromkeys(fields))


FILE_FORMATS: dict[str, tuple[ReaderName, Layout]] = {
    "glue_mnli_tsv": (
        "tsv",
        Layout(
            "sentence1",
            "sentence2",
            "gold_label",
            uid=("pairID", "index"),
            meta=("pairID", "promptID", "genre"),
            skip_labels=MNLI_UNLABELLED,
        ),
    ),
    "mnli_dev_tsv": (
        "tsv",
        Layout("premise", "hypothesis", "gold_label", uid=("index",), skip_labels=MNLI_UNLABELLED),
    ),
    "pair_json": ("pair_json", Layout("text_a", "text_b", "label", uid=("__key__",))),
    "hans_tsv": (
        "tsv",
        Layout(
            "sentence1",
            "sentence2",
            "gold_label",
            uid=("pairID",),
            meta=("heuristic", "subcase", "pairID", "template"),
            required_meta=("heuristic", "subcase", "pairID"),
        ),
    ),
    # GLUE's QQP TSV quotes fields that contain `"` the CSV way ("a ""b"" c"), unlike MNLI.
    "glue_qqp_tsv": (
        "tsv_quoted",
        Layout("question1", "question2", "is_duplicate", uid=("id",), meta=("qid1", "qid2")),
    ),
    "paws_tsv": (
        "tsv",
        Layout("sentence1", "sentence2", "label", uid=("id",), meta=("id",), bytes_literals=True),
    ),
    "fever_nli_jsonl": (
        "jsonl",
        Layout("claim", "evidence", "gold_label", uid=("id",), meta=("id",)),
    ),
    "fever_symmetric_v1": (
        "jsonl",
        Layout("claim", "evidence_sentence", "label", uid=("id",), meta=("id",)),
    ),
    "fever_symmetric_v2": (
        "jsonl",
        Layout("claim", "evidence", "gold_label", uid=("id",), meta=("id",)),
    ),
}

CUSTOM_READERS: dict[str, ReaderName] = {
    ".csv": "csv",
    ".tsv": "tsv_quoted",  # as pandas and the csv module write TSV
    ".jsonl": "jsonl",
    ".json": "jsonl",
}


def custom_layout(columns: ColumnMap | None) -> Layout:
    """The layout of a custom file: the spec's column mapping."""
    columns = columns or ColumnMap()
    return Layout(
        text_a=columns.text_a,
        text_b=columns.text_b,
        label=columns.label,
        uid=(columns.id,) if columns.id else (),
        uid_required=columns.id is not None,
        meta=(columns.id,) if columns.id else (),
        # A text_b column left at its default may be absent (single-sentence task); one the
        # user named explicitly must be there.
        optional_text_b="text_b" not in columns.model_fields_set,
    )


def custom_reader(path: Path) -> ReaderName:
    """CSV, TSV or JSON Lines, chosen by the file's extension (a trailing .gz is ignored)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in CUSTOM_READERS:
        raise DataFormatError(
            f"a custom data file must end in {', '.join(CUSTOM_READERS)} (optionally + .gz) "
            f"to tell its format; found '{suffix or 'no extension'}'",
            path,
        )
    return CUSTOM_READERS[suffix]


# ---------------------------------------------------------------------------------------------
# Reading lines


def _open_binary(path: Path) -> BinaryIO:
    try:
        handle = open_confined(path)  # inside a worker's confinement: checked once opened
    except OutsideRootsError as exc:
        raise DataFormatError(f"not read: {exc.args[0].removeprefix(f'{path}: ')}", path) from None
    except OSError as exc:
        raise DataFormatError(f"cannot open the file ({exc.strerror})", path) from None
    if handle.read(2) == _GZIP_MAGIC:
        handle.seek(0)
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    handle.seek(0)
    return handle


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
            "(save the file as UTF-8)",
            path,
            lineno,
        ) from None
    if lineno == 1 and text.startswith("\ufeff"):  # a byte-order mark some editors add
        text = text[1:]
    return text


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending) for every line of a file, gzip or not."""
    handle = _open_binary(path)
    lineno = 0
    try:
        with handle:
            for lineno, raw in enumerate(handle, start=1):
                yield lineno, _decode(raw.rstrip(b"\r\n"), path, lineno)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataFormatError(
            f"the gzip stream is corrupt or truncated ({exc})", path, lineno + 1
        ) from None
    except OSError as exc:
        raise DataFormatError(f"cannot read the file ({exc})", path, lineno + 1) from None


def read_text(path: Path) -> str:
    """The whole file as text (for formats that are one JSON document)."""
    return "\n".join(line for _, line in iter_lines(path))


# ---------------------------------------------------------------------------------------------
# Readers: each yields (line number, fields) records


def _check_header(header: Sequence[str], layout: Layout, path: Path, lineno: int) -> None:
    missing = [name for name in layout.required_fields() if name not in header]
    if missing:
        raise DataFormatError(
            f"missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} in the header; "
            f"the header has: {', '.join(repr(h) for h in header)}",
            path,
            lineno,
        )


def read_tsv(path: Path, layout: Layout) -> Iterator[Record]:
    """Tab-separated rows under a header row; no quoting (as GLUE, HANS and PAWS write them)."""
    lines = iter_lines(path)
    header: list[str] | None = None
    header_line = 1
    for header_line, text in lines:  # noqa: B007 - the header's line is used below
        if text.strip():
            header = [name.strip() for name in text.split("\t")]
            break
    if header is None:
        raise DataFormatError("the file is empty (no header row)", path, header_line)
    _check_header(header, layout, path, header_line)
    width = len(header)
    rows = 0
    last = header_line
    for last, text in lines:
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != width:
            raise DataFormatError(
                f"expected {width} tab-separated fields as in the header, found {len(fields)}",
                path,
                last,
            )
        rows += 1
        yield last, dict(zip(header, fields, strict=True))
    if rows == 0:
        raise DataFormatError("no data rows after the header", path, last + 1)


def read_csv(path: Path, layout: Layout, delimiter: str = ",") -> Iterator[Record]:
    """Delimited rows under a header row, with standard CSV quoting (fields may span lines)."""
    lines = (text + "\n" for _, text in iter_lines(path))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    separated = "tab-separated" if delimiter == "\t" else "comma-separated"
    header: list[str] | None = None
    previous = 0
    rows = 0
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [name.strip() for name in row]
                _check_header(header, layout, path, start)
                continue
            if len(row) != len(header):
                raise DataFormatError(
                    f"expected {len(header)} {separated} fields as in the header, found {len(row)}",
                    path,
                    start,
                )
            rows += 1
            yield start, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        if reader.line_num > previous + 1 or "end of data" in str(exc):
            # The record ran on past its first line: a quote opened there is never closed
            # (csv notices only at the end of the file; report where the quote opened).
            raise DataFormatError(
                f"a quoted field opens on this line and is not closed where it should be: an "
                f"unterminated quote? ({exc})",
                path,
                previous + 1,
            ) from None
        raise DataFormatError(
            f"not valid {separated} text with CSV quoting ({exc})", path, reader.line_num
        ) from None
    if header is None:
        raise DataFormatError("the file is empty (no header row)", path, 1)
    if rows == 0:
        raise DataFormatError("no data rows after the header", path, previous + 1)


def read_jsonl(path: Path, layout: Layout) -> Iterator[Record]:
    """One JSON object per line."""
    rows = 0
    last = 0
    for last, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                f"not a valid JSON line: {exc.msg} at column {exc.colno} "
                "(JSON Lines files hold one object per line)",
                path,
                last,
            ) from None
        if not isinstance(value, dict):
            raise DataFormatError(f"expected a JSON object, found {_json_type(value)}", path, last)
        rows += 1
        yield last, value
    if rows == 0:
        raise DataFormatError("the file is empty (no JSON lines)", path, max(last, 1))


def read_pair_json(path: Path, layout: Layout) -> Iterator[Record]:
    """One JSON object {"0": {...}, "1": {...}}: entries in numeric key order."""
    text = read_text(path)
    if not text.strip():
        raise DataFormatError("the file is empty", path, 1)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"not valid JSON: {exc.msg} at column {exc.colno}", path, exc.lineno
        ) from None
    if not isinstance(document, dict):
        raise DataFormatError(
            f"expected a JSON object keyed by example number, found {_json_type(document)}",
            path,
            1,
        )
    if not document:
        raise DataFormatError("the JSON object holds no examples", path, 1)
    lines = _key_lines(text, list(document))
    keys = list(document)
    if all(_is_int(key) for key in keys):
        keys.sort(key=int)
    for key in keys:
        entry = document[key]
        if not isinstance(entry, dict):
            raise DataFormatError(
                f"entry {key!r}: expected an object with text_a, text_b, label, "
                f"found {_json_type(entry)}",
                path,
                lines.get(key),
            )
        yield lines.get(key), {**entry, "__key__": key}


_COLON = re.compile(r"\s*:")


def _key_lines(text: str, keys: Sequence[str]) -> dict[str, int]:
    """Line of each top-level key, found by scanning forward in file order (for messages)."""
    found: dict[str, int] = {}
    position, line = 0, 1
    for key in keys:
        quoted = json.dumps(key)
        start = text.find(quoted, position)
        while start >= 0 and not _COLON.match(text, start + len(quoted)):
            start = text.find(quoted, start + 1)
        if start < 0:
            continue
        line += text.count("\n", position, start)
        position = start
        found[key] = line
    return found


def read_records(reader: ReaderName, path: Path, layout: Layout) -> Iterator[Record]:
    """The (line, fields) records of a file read the way `reader` says."""
    if reader == "tsv":
        return read_tsv(path, layout)
    if reader == "tsv_quoted":
        return read_csv(path, layout, delimiter="\t")
    if reader == "csv":
        return read_csv(path, layout)
    if reader == "jsonl":
        return read_jsonl(path, layout)
    return read_pair_json(path, layout)


# ---------------------------------------------------------------------------------------------
# Records to examples


def _is_int(key: str) -> bool:
    return key.isascii() and key.lstrip("-").isdigit()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def decode_bytes_literal(text: str) -> str:
    """PAWS sentences: `b'...'` / `b"..."` Python bytes literals holding UTF-8 text.

    Parsed with `ast.literal_eval` (a literal parser, never `eval`); plain text passes through.
    Raises ValueError with the reason when the literal is broken.
    """
    stripped = text.strip()
    if len(stripped) < 3 or stripped[0] != "b" or stripped[1] not in "'\"":
        return text
    if stripped[-1] != stripped[1]:
        raise ValueError("unterminated bytes literal")
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"not a valid bytes literal ({exc.__class__.__name__})") from None
    if not isinstance(value, bytes):
        raise ValueError("not a bytes literal")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the bytes literal does not hold UTF-8 text") from None


class ExampleBuilder:
    """Turns the records of one source into `Example`s: label check, ids, meta, text decoding.

    `line` is a file's line number; for a hub data set the builder gets `unit="row"` and
    0-based row numbers instead.
    """

    def __init__(
        self,
        layout: Layout,
        label_names: Sequence[str],
        label_map: Mapping[str, str] | None,
        source: str | Path,
        kind: str = "file",
        unit: str = "line",
    ):
        self.layout = layout
        self.label_names = tuple(label_names)
        self.label_index = {name: i for i, name in enumerate(self.label_names)}
        self.label_map = dict(label_map or {})
        self.source = source
        self.kind = kind
        self.unit = unit

    def build(self, records: Iterable[Record]) -> list[Example]:
        examples: list[Example] = []
        seen: dict[str, int] = {}
        skipped = 0
        for line, fields in records:
            example = self.example(line, fields)
            if example is None:
                skipped += 1
                continue
            count = seen.get(example.uid, 0) + 1
            seen[example.uid] = count
            if count > 1:  # ids must be unique (bias files are keyed by them): number repeats
                example = Example(
                    uid=f"{example.uid}#{count}",
                    text_a=example.text_a,
                    text_b=example.text_b,
                    label=example.label,
                    meta=example.meta,
                )
            examples.append(example)
        if not examples:
            reason = f" ({skipped} rows without a gold label were skipped)" if skipped else ""
            raise self._error(f"no labelled examples{reason}", None)
        return examples

    def example(self, line: int | None, fields: Mapping[str, Any]) -> Example | None:
        """The record as an Example, or None for a row without a gold label (MNLI `-`)."""
        layout = self.layout
        raw_label = self._label(line, fields)
        if raw_label in layout.skip_labels:
            return None
        label = self.label_map.get(raw_label, raw_label)
        index = self.label_index.get(label)
        if index is None:
            via = f" (renamed from {raw_label!r} by label_map)" if label != raw_label else ""
            raise self._error(
                f"unknown label {label!r}{via} in field {layout.label!r}; allowed labels: "
                f"{', '.join(repr(n) for n in self.label_names)}",
                line,
            )
        text_a = self._text(line, fields, layout.text_a)
        if layout.text_b is None or (layout.optional_text_b and layout.text_b not in fields):
            text_b = ""
        else:
            text_b = self._text(line, fields, layout.text_b)
        return Example(
            uid=self._uid(line, fields),
            text_a=text_a,
            text_b=text_b,
            label=index,
            meta=self._meta(line, fields),
        )

    def _error(self, problem: str, line: int | None) -> DataFormatError:
        return DataFormatError(problem, self.source, line, kind=self.kind, unit=self.unit)

    def _missing(self, line: int | None, fields: Mapping[str, Any], name: str) -> DataFormatError:
        present = ", ".join(repr(k) for k in fields if not k.startswith("__"))
        return self._error(f"missing field {name!r}; the record has: {present}", line)

    def _text(self, line: int | None, fields: Mapping[str, Any], name: str) -> str:
        if name not in fields:
            raise self._missing(line, fields, name)
        value = fields[name]
        if not isinstance(value, str):
            raise self._error(f"field {name!r} must be a string, found {_json_type(value)}", line)
        if self.layout.bytes_literals:
            try:
                return decode_bytes_literal(value)
            except ValueError as exc:
                raise self._error(f"field {name!r}: {exc}", line) from None
        return value

    def _label(self, line: int | None, fields: Mapping[str, Any]) -> str:
        name = self.layout.label
        if name not in fields:
            raise self._missing(line, fields, name)
        value = fields[name]
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self._error(
            f"label field {name!r} must be a string or an integer, found {_json_type(value)}",
            line,
        )

    def _uid(self, line: int | None, fields: Mapping[str, Any]) -> str:
        for name in self.layout.uid:
            value = fields.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
        if self.layout.uid_required:
            raise self._error(f"id field {self.layout.uid[0]!r} is missing or empty", line)
        return str(line)

    def _meta(self, line: int | None, fields: Mapping[str, Any]) -> dict[str, str]:
        meta: dict[str, str] = {}
        for name in self.layout.meta:
            value = fields.get(name)
            if value is None:
                if name in self.layout.required_meta:
                    raise self._missing(line, fields, name)
                continue
            meta[name] = value.strip() if isinstance(value, str) else str(value)
        return meta

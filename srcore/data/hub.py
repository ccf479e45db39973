"""Splits from the `datasets` hub (online machines), read with the same checks as local files.

`datasets` is imported only when a hub source is asked for: the rest of `srcore.data` stays
light. Offline, or when the hub cannot be reached, the loader raises `DataSourceUnavailable`
with what was asked and what to do instead, never a raw traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from srcore.data.errors import DataFormatError, DataSourceUnavailable
from srcore.data.examples import Example
from srcore.data.formats import FILE_FORMATS, ExampleBuilder, Layout, Record, custom_layout
from srcore.jobspec.spec import SourceSpec

# Names that live at the top level of the hub (no owner), so `glue/mnli` means name/config.
# Any other `a/b` is read as an owner/name repository; give `owner/name/config` for a config.
UNOWNED_NAMES = frozenset({"glue", "super_glue", "hans", "paws", "paws-x", "multi_nli", "snli"})

_UNLABELLED = frozenset({"-1"})  # GLUE test splits carry label -1

# Column names of the hub's versions of each format (glue/mnli, hans, glue/qqp, paws...).
HUB_LAYOUTS: dict[str, Layout] = {
    "glue_mnli_tsv": Layout(
        "premise", "hypothesis", "label", uid=("idx", "__row__"), skip_labels=_UNLABELLED
    ),
    "mnli_dev_tsv": Layout(
        "premise", "hypothesis", "label", uid=("idx", "__row__"), skip_labels=_UNLABELLED
    ),
    "pair_json": Layout("text_a", "text_b", "label", uid=("idx", "id", "__row__")),
    "hans_tsv": Layout(
        "premise",
        "hypothesis",
        "label",
        uid=("pairID", "__row__"),
        meta=("heuristic", "subcase", "pairID", "template"),
        required_meta=("heuristic", "subcase"),
    ),
    "glue_qqp_tsv": Layout(
        "question1", "question2", "label", uid=("idx", "__row__"), skip_labels=_UNLABELLED
    ),
    "paws_tsv": Layout("sentence1", "sentence2", "label", uid=("id", "__row__"), meta=("id",)),
}

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def parse_hub_id(hub: str) -> tuple[str, str | None, str]:
    """`name[/config]:split` as (name, config, split); `owner/name/config:split` also works."""
    path, sep, split = hub.rpartition(":")
    if not sep or not path or not split:
        raise DataFormatError(
            "expected `name[/config]:split`, e.g. `glue/mnli:validation_matched`",
            hub,
            kind="hub source",
        )
    parts = path.split("/")
    if any(not part for part in parts) or len(parts) > 3:
        raise DataFormatError(
            "expected `name[/config]:split` or `owner/name/config:split`", hub, kind="hub source"
        )
    if len(parts) == 3:
        return f"{parts[0]}/{parts[1]}", parts[2], split
    if len(parts) == 2 and parts[0] in UNOWNED_NAMES:
        return parts[0], parts[1], split
    return path, None, split


def offline_flag() -> str | None:
    """The offline variable that is set, if any."""
    for name in _OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return name
    return None


def _fetch(hub: str) -> Any:
    name, config, split = parse_hub_id(hub)
    # `datasets.load_dataset` reads a local folder or script of that name when there is one:
    # a hub id never names a local path (srcore.jobspec.spec_paths).
    shadows = [p for p in (name, f"{name}.py") if os.path.lexists(p)]
    if shadows:
        raise DataFormatError(
            f"is read as a hub id, but the working directory holds {shadows[0]!r}; "
            "give a local file with `path` instead",
            hub,
            kind="hub source",
        )
    try:
        import datasets
    except ImportError:
        raise DataSourceUnavailable(
            "the `datasets` package is not installed; give a local file with `path` instead",
            hub,
        ) from None
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # the hub client raises many types; the user needs one message
        asked = f"cannot load `datasets` id {name!r}{f' config {config!r}' if config else ''}"
        asked += f" split {split!r}"
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        flag = offline_flag()
        if flag:
            reason = f"{flag} is set (no network use) and it is not in the local `datasets` cache"
        elif _is_network_error(exc):
            reason = "the hub cannot be reached (no network?)"
        else:
            raise DataFormatError(f"{asked}: {said}", hub, kind="hub source") from None
        raise DataSourceUnavailable(
            f"{asked}: {reason} [{said}]. Give a local file with `path` instead, "
            "or run where the hub is reachable.",
            hub,
        ) from None


def _is_network_error(exc: BaseException) -> bool:
    """Connection and timeout errors of the builtins, requests, httpx and huggingface_hub."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    names = " ".join(cls.__name__ for cls in type(exc).__mro__)
    return any(word in names for word in ("Connect", "Timeout", "Offline", "Transport"))


def _label_decoder(
    dataset: Any, layout: Layout, label_names: Sequence[str], label_map: Mapping[str, str]
):
    """Integer class labels to the names the task uses.

    A `ClassLabel` name is used when it (after `label_map`) is one of the task's labels
    (MNLI: entailment...); otherwise the integer itself as text (QQP: 0/1, where the hub names
    are not_duplicate/duplicate).
    """
    from datasets import ClassLabel

    feature = dataset.features.get(layout.label)
    names: list[str] = list(feature.names) if isinstance(feature, ClassLabel) else []
    known = set(label_names)

    def decode(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return value
        if value < len(names) and label_map.get(names[value], names[value]) in known:
            return names[value]
        return str(value)

    return decode


def _records(dataset: Any, layout: Layout, decode) -> Iterator[Record]:
    for row_number, row in enumerate(dataset):
        fields = dict(row)
        fields[layout.label] = decode(fields.get(layout.label))
        fields["__row__"] = row_number
        yield row_number, fields


def load_hub_examples(source: SourceSpec, label_names: Sequence[str]) -> tuple[list[Example], str]:
    """The examples of a hub split and its origin string (`hub:<id>`)."""
    hub = source.hub
    assert hub is not None
    if source.format == "custom":
        layout = custom_layout(source.columns)
    elif source.format in HUB_LAYOUTS:
        layout = HUB_LAYOUTS[source.format]
    else:  # the FEVER JSONL formats: the hub copies use the files' own field names
        layout = FILE_FORMATS[source.format][1]
    dataset = _fetch(hub)
    columns = list(dataset.column_names)
    missing = [name for name in layout.required_fields() if name not in columns]
    if missing:
        raise DataFormatError(
            f"format {source.format!r} needs column(s) {', '.join(map(repr, missing))}; "
            f"the data set has: {', '.join(map(repr, columns))}",
            hub,
            kind="hub source",
        )
    label_map = dict(source.label_map or {})
    builder = ExampleBuilder(layout, label_names, label_map, hub, kind="hub source", unit="row")
    decode = _label_decoder(dataset, layout, label_names, label_map)
    return builder.build(_records(dataset, layout, decode)), f"hub:{hub}"

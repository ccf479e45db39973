"""One study table over seeds that ran in separate `srnet study run` folders ("parts").

A verdict that is not separable at n = 3 needs more seeds for the rows it rests on, and those
seeds usually run later, on another day, often only for those rows (`study run --only`). This
merges the parts' per-seed records (table.json's "seeds", unrounded; seeds.csv where a folder
has no table.json) into one table with the same code as any study (`study_table`'s rows,
`write_tables`): means, sds, paired comparisons and plots over the union of the seeds.
Nothing is recomputed from models: each seed's numbers are the ones its part recorded, and
each record's `job` is prefixed with its part's folder name, so a cell stays traceable to the
run that made it.

The parts must be one design: the same study once the name and `training.seeds` are set aside
(so every row has the same spec apart from its seeds), `precision: auto` resolved alike (bf16
on one machine, fp32 on another is two designs; checked where the parts recorded it, in
run_info.json's `auto_precision`), and no (row, sparsity, seed) may come from two parts. A
part is a folder with seeds.csv and run_info.json, and its study file: the folder's
study.json when it has one, else the file run_info.json names.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srcore.jobspec.study import StudyError, StudySpec, expand_study
from srcore.jobspec.study_table import (
    Cell,
    SeedEntry,
    TableRow,
    read_seeds_csv,
    study_table,
)
from srcore.pipeline.study_run import write_json, write_tables

PART_INFO = (
    "cpu",
    "cores",
    "torch_threads",
    "gpu",
    "auto_precision",
    "auto_precision_source",
    "command",
    "study_file",
    "job_seconds_note",
)


@dataclass(frozen=True)
class StudyPart:
    folder: Path
    study: StudySpec
    records: list[dict[str, Any]]  # per-seed records: table.json's "seeds" (else seeds.csv)
    info: dict[str, Any]  # run_info.json
    timings: dict[str, float]  # timings.json: child key → wall seconds


def read_part(folder: Path, root: Path | None = None) -> StudyPart:
    """A study folder as a part; StudyError("parts") when a file it needs is missing. `root`:
    where a study file path in run_info.json is relative to (default: the current folder)."""
    folder = Path(folder)
    info_path, seeds_path = folder / "run_info.json", folder / "seeds.csv"
    for path in (info_path, seeds_path):
        if not path.exists():
            raise StudyError("parts", f"{folder}: no {path.name} (not a study folder?)")
    info = json.loads(info_path.read_text())
    study_path = folder / "study.json"
    if not study_path.exists():
        named = info.get("study_file")
        if not named:
            raise StudyError("parts", f"{folder}: no study.json and run_info.json names none")
        study_path = (root or Path.cwd()) / named
    if not study_path.exists():
        raise StudyError("parts", f"{folder}: its study file {study_path} does not exist")
    study = StudySpec.model_validate_json(study_path.read_text())
    timings_path = folder / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    table_path = folder / "table.json"  # its records hold the values unrounded
    seeds = json.loads(table_path.read_text()).get("seeds") if table_path.exists() else None
    records = seeds if seeds is not None else read_seeds_csv(seeds_path.read_text())
    return StudyPart(folder, study, records, info, timings)


def design(study: StudySpec) -> dict[str, Any]:
    """The study with its name and seeds set aside: what every part must share."""
    doc = study.model_dump(mode="json")
    doc.pop("name", None)
    doc["base"]["training"].pop("seeds", None)
    return doc


def merged_study(parts: Sequence[StudyPart], name: str | None = None) -> StudySpec:
    """The first part's study (named `name` if given) with the union of the parts' seeds;
    StudyError("parts") when the parts are not one design."""
    if not parts:
        raise StudyError("parts", "no study folders to merge")
    first = design(parts[0].study)
    for part in parts[1:]:
        if design(part.study) != first:
            raise StudyError(
                "parts",
                f"{part.folder} is not the same study as {parts[0].folder} (they differ in "
                "more than their name and seeds)",
            )
    if parts[0].study.base.training.precision == "auto":
        # `auto` is bf16 on one machine and fp32 on another: seeds of both are not one design
        picked = {p.info["auto_precision"]: p for p in parts if p.info.get("auto_precision")}
        if len(picked) > 1:
            (a, pa), (b, pb) = list(picked.items())[:2]
            raise StudyError(
                "parts",
                f"`precision: auto` ran as {a} in {pa.folder} and as {b} in {pb.folder}: "
                "seeds of different precisions are not one study",
            )
    seeds = sorted({s for part in parts for s in part.study.base.training.seeds})
    doc = parts[0].study.model_dump(mode="json")
    doc["base"]["training"]["seeds"] = seeds
    if name is not None:
        doc["name"] = name
    return StudySpec.model_validate(doc)


def _entries(part: StudyPart) -> dict[tuple[str, float, int], SeedEntry]:
    """The part's seed records grouped into one entry per (row, sparsity, seed)."""
    grouped: dict[tuple[str, float, int], list[Mapping[str, Any]]] = {}
    for record in part.records:
        key = (record["row"], record["sparsity"], record["seed"])
        grouped.setdefault(key, []).append(record)
    entries = {}
    for key, records in grouped.items():
        first = records[0]
        job = first["job"]
        entries[key] = SeedEntry(
            seed=first["seed"],
            child=first["child"],
            job=f"{part.folder.name}/{job}" if job else part.folder.name,
            selected_step=first["selected_step"],
            mask_sha256=first["mask_sha256"],
            values={r["metric"]: r["value"] for r in records},
            collapsed=frozenset(r["metric"].split(".", 1)[0] for r in records if r["collapsed"]),
        )
    return entries


def merge_rows(study: StudySpec, parts: Sequence[StudyPart]) -> list[TableRow]:
    """The merged study's table rows (in its order) holding every part's seed entries;
    StudyError("parts") for a row the study lacks or a seed two parts both hold."""
    rows = study_table(expand_study(study), [])
    by_label = {row.label: row for row in rows}
    origin: dict[tuple[str, float, int], Path] = {}
    for part in parts:
        for (label, sparsity, seed), entry in sorted(_entries(part).items()):
            row = by_label.get(label)
            if row is None:
                raise StudyError("parts", f"{part.folder}: row {label!r} is not in the study")
            key = (label, sparsity, seed)
            if key in origin:
                raise StudyError(
                    "parts",
                    f"{label!r} at sparsity {sparsity:g}, seed {seed}, is in both "
                    f"{origin[key]} and {part.folder}",
                )
            origin[key] = part.folder
            row.cells.setdefault(sparsity, Cell()).add_entry(entry)
    for row in rows:
        for cell in row.cells.values():
            cell.entries.sort(key=lambda e: e.seed)
    return rows


def part_summary(part: StudyPart) -> dict[str, Any]:
    """What run_info.json of the merged folder says of one part: where and how it ran, its
    seeds, the rows it holds and its job wall time."""
    summary: dict[str, Any] = {"folder": part.folder.as_posix()}
    summary.update({k: part.info[k] for k in PART_INFO if k in part.info})
    summary["torch"] = part.info.get("versions", {}).get("torch")
    summary["seeds"] = part.study.base.training.seeds
    summary["rows"] = rows_seeds(part)
    summary["job_seconds_total"] = part.info.get("job_seconds_total")
    return summary


def rows_seeds(part: StudyPart) -> dict[str, list[int]]:
    """Row label → the seeds this part holds for it."""
    found: dict[str, set[int]] = {}
    for record in part.records:
        found.setdefault(record["row"], set()).add(record["seed"])
    return {label: sorted(seeds) for label, seeds in found.items()}


def merge_study(
    parts: Sequence[StudyPart], out_dir: Path, name: str | None = None
) -> tuple[StudySpec, list[TableRow]]:
    """Write the merged table of `parts` to `out_dir`: the table files (`write_tables`),
    study.json (the merged study: the union of the seeds), run_info.json (each part: where it
    ran, its seeds and rows), timings.json (each child's wall seconds summed over the parts)
    and bias_models.json (the parts' bias models, once each)."""
    study = merged_study(parts, name)
    rows = merge_rows(study, parts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tables(study, rows, out_dir)
    write_json(out_dir / "study.json", study.model_dump(mode="json", exclude_unset=True))
    timings: dict[str, float] = {}
    for part in parts:
        for key, seconds in part.timings.items():
            timings[key] = round(timings.get(key, 0.0) + seconds, 1)
    write_json(out_dir / "timings.json", timings)
    bias: dict[str, Any] = {}
    for part in parts:
        path = part.folder / "bias_models.json"
        for model in json.loads(path.read_text()) if path.exists() else []:
            key = json.dumps({k: v for k, v in model.items() if k != "rows"}, sort_keys=True)
            entry = bias.setdefault(key, {**model, "rows": []})
            entry["rows"] += [r for r in model.get("rows", []) if r not in entry["rows"]]
    write_json(out_dir / "bias_models.json", list(bias.values()))
    first = parts[0].info
    expected = set(study.base.training.seeds)
    complete = all(
        set(cell.seeds) == expected for row in rows for cell in row.cells.values()
    ) and all(row.cells for row in rows)
    info: dict[str, Any] = {}
    for key in ("cpu", "cores", "torch_threads", "gpu", "python"):  # " / " when parts differ
        values = list(dict.fromkeys(p.info[key] for p in parts if p.info.get(key) is not None))
        info[key] = " / ".join(map(str, values)) if len(values) > 1 else first.get(key)
    info.update(
        {
            "versions": first.get("versions", {}),
            "jobs": len(expand_study(study)),
            "complete": complete,
            "job_seconds_total": round(sum(timings.values()), 1),
            "study_file": f"{out_dir.as_posix()}/study.json",
            "command": "srnet study merge --out "
            + out_dir.as_posix()
            + "".join(f" {p.folder.as_posix()}" for p in parts)
            + (f" --name {shlex.quote(name)}" if name is not None else ""),
            "seeds": study.base.training.seeds,
            "parts": [part_summary(p) for p in parts],
        }
    )
    write_json(out_dir / "run_info.json", info)
    return study, rows

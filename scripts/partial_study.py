"""Tables from the seeds a long local study has finished so far (`srnet study run` folders).

A study child runs its seeds one after another, and `srnet study run` writes a child's report
only when all of them are done; a session that ends part-way leaves finished seeds that no table
shows. This builds a derived study (DERIVED.json: the same base with `training.seeds` set to the
finished seeds, and the axes/rows wanted), seeds its folder with the source folder's finished
per-seed unit files of the children with the same spec (matched by spec_hash with the derived
seeds; a child that finished every seed has its work folder cleaned, so its units are read from
its report), shares the source's stage cache, and runs the standard `run_study` on it: the table,
per-seed records, comparisons and plots come from the same code as any study. A derived child
with no finished unit in the source runs for real (cheap for one-shot magnitude rows).

The mask files are copied too (the per-seed records hash them: the same bytes as the source's);
unit files keep the paths of their masks and checkpoints in the source folder.

usage: python scripts/partial_study.py SOURCE.json SOURCE_OUT DERIVED.json DEST_OUT
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from srcore.jobspec.layout import OutputLayout, child_dir_name, sparsity_tag
from srcore.jobspec.results import ResultUnit, SearchResult
from srcore.jobspec.spec import JobSpec, spec_hash, spec_hashes
from srcore.jobspec.study import StudyChild, StudySpec, expand_study
from srcore.pipeline.study_run import run_study


def _with_seeds(spec: JobSpec, seeds: list[int]) -> str:
    doc = spec.model_dump(mode="json")
    doc["training"]["seeds"] = seeds
    return spec_hash(JobSpec.model_validate(doc))


def _reported_units(src: Path, origin: StudyChild, seed: int) -> list[ResultUnit]:
    """The seed's units from the report of a source child that finished all its seeds (its
    metrics.json, for the spec it has now); none when it has not."""
    child_dir = src / "jobs" / child_dir_name(origin.key)
    if not OutputLayout(child_dir).metrics_path.exists():
        return []
    result = SearchResult.read(child_dir)
    if result.spec_hash not in spec_hashes(origin.spec):
        return []
    return [u for u in result.units if u.seed == seed]


def main(source_file: str, source_out: str, derived_file: str, dest_out: str) -> int:
    source = StudySpec.model_validate(json.loads(Path(source_file).read_text()))
    derived = StudySpec.model_validate(json.loads(Path(derived_file).read_text()))
    seeds = derived.base.training.seeds
    src, dest = Path(source_out), Path(dest_out)
    by_hash = {_with_seeds(c.spec, seeds): c for c in expand_study(source)}
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / "cache").exists():
        (dest / "cache").symlink_to((src / "cache").resolve())
    for child in expand_study(derived):
        origin = by_hash.get(spec_hash(child.spec))
        for seed in seeds:
            done = (
                None
                if origin is None
                else src / "jobs" / child_dir_name(origin.key) / "work" / f"seed-{seed}" / "done"
            )
            units = sorted(done.glob("unit-*.json")) if done is not None and done.is_dir() else []
            target = dest / "jobs" / child_dir_name(child.key) / "work" / f"seed-{seed}" / "done"
            reported = [] if units or origin is None else _reported_units(src, origin, seed)
            if not units and not reported:
                print(f"{child.key}, seed {seed}: not finished in {src}; it runs here")
                continue
            target.mkdir(parents=True, exist_ok=True)
            for unit in units:
                shutil.copy2(unit, target / unit.name)
            for reported_unit in reported:  # a finished child's work folder is cleaned away
                reported_unit.write(target / f"unit-{sparsity_tag(reported_unit.sparsity)}.json")
            # The masks too, where the per-seed records hash them (the unit files still name
            # the source's copies, and its checkpoints stay there).
            masks = src / "jobs" / child_dir_name(origin.key) / "masks" / f"seed-{seed}"
            if masks.is_dir():
                shutil.copytree(
                    masks,
                    dest / "jobs" / child_dir_name(child.key) / "masks" / f"seed-{seed}",
                    dirs_exist_ok=True,
                )
            print(f"{child.key}, seed {seed}: finished in {src} as {origin.key}")
    run = run_study(derived, dest, log=print, source=derived_file)
    # run_info.json says what this table is a part of, and how it was made.
    info_path = dest / "run_info.json"
    info = json.loads(info_path.read_text())
    info.update(
        {
            "partial_of": source_file,
            "seeds": seeds,
            "command": f"python scripts/partial_study.py {source_file} {src} {derived_file} {dest}",
            "job_seconds_note": "job_seconds_total counts this folder's run only: units read "
            "back from the source took no time here",
        }
    )
    info_path.write_text(json.dumps(info, indent=1))
    print(f"table: {run.csv_path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))

"""Write docs/results.md from the studies' CSV exports under results/studies/*/ — never typed by
hand. Run: .venv/bin/python scripts/make_results.py

Each study folder holds what `srnet study run` (or `srnet study table ID --csv` for a study run
by the service) wrote: table.csv, table.json (with the study spec), run_info.json,
timings.json, plot.png and bias_models.json. The fidelity goals of the issue are checked here
against the tables, and a goal that is not met is reported with its numbers.

A study whose table.json holds per-seed records ("seeds") is judged by paired differences: each
goal's `row − reference` over the seeds both share, with a 95% t interval
(srcore.jobspec.study_compare), is "met" when the whole interval clears the bound, "missed" when
the whole interval falls short, else "not separable at n = …". Older studies without per-seed
records are judged on seed means as before, and say so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srcore.jobspec.study_compare import (  # noqa: E402
    INTERVAL,
    ComparisonError,
    PairedDifference,
    compare_rows,
    comparison_text,
)
from srcore.jobspec.study_format import (  # noqa: E402
    cell_text,
    hans_heuristics_table,
    markdown_table,
)
from srcore.jobspec.study_table import read_table_csv  # noqa: E402

STUDIES = ROOT / "results" / "studies"
OUT = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
# The README's headline table, written between these markers: (label, study, row, sparsity).
HEADLINE_BEGIN = "<!-- headline table: written by scripts/make_results.py -->"
HEADLINE_END = "<!-- end of headline table -->"
HEADLINE = (
    ("dense CE", "mnli-hans-full", "dense CE", 0.0),
    ("dense PoE", "mnli-hans-full", "dense poe", 0.0),
    ("50% mask, CE loss", "mnli-hans-full", "loss none", 0.5),
    ("**50% mask, PoE loss (SRNet)**", "mnli-hans-full", "loss poe", 0.5),
    ("50% mask, PoE, class-balanced bias model", "mnli-bias-model", "class_weight balanced", 0.5),
    ("70% mask, PoE, gradual 50→70%", "mnli-hans-full", "poe gradual 50→70%", 0.7),
)
HEADLINE_METRICS = ("dev.accuracy", "hans.accuracy", "hans.entailed", "hans.non_entailed")
# The headline study first; any other study folder follows in name order.
ORDER = ("mnli-hans-full", "mnli-hans", "mnli-bias-model", "qqp-paws")

# How each task's goals read its table: the ID metric, OOD "overall" and the robust class.
ROLES = {
    "mnli": {
        "id": "dev.accuracy",
        "overall": "hans.accuracy",
        "robust": "hans.non_entailed",
        "other": "hans.entailed",
        "robust_name": "HANS non-entailed",
    },
    "qqp": {
        "id": "dev.f1",
        "overall": "paws_qqp.accuracy",
        "robust": "paws_qqp.0",
        "other": "paws_qqp.1",
        "robust_name": "PAWS non-duplicate",
    },
}


@dataclass(frozen=True)
class Study:
    """A study folder's table and spec, read once."""

    folder: Path
    records: list[dict[str, Any]]
    meta: dict[str, Any]  # the study spec (table.json's "study")
    seeds: list[dict[str, Any]] | None = None  # per-seed records; None: an older study
    comparisons: list[dict[str, Any]] | None = None  # table.json's paired differences

    @classmethod
    def read(cls, folder: Path) -> Study:
        records = read_table_csv((folder / "table.csv").read_text())
        table = json.loads((folder / "table.json").read_text())
        return cls(folder, records, table["study"], table.get("seeds"), table.get("comparisons"))


def _index(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, float, str], Mapping]:
    return {(r["row"], float(r["sparsity"]), r["metric"]): r for r in records}


def _mean(index, row: str, sparsity: float, metric: str) -> float | None:
    record = index.get((row, sparsity, metric))
    return None if record is None else record["mean"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _vs(value: float, bound: float) -> str:
    """`value ≥ bound` when it holds, `value < bound` when it does not."""
    return f"{_pct(value)} {'≥' if value >= bound else '<'} {_pct(bound)}"


@dataclass(frozen=True)
class GoalRow:
    """One debiased row × sparsity checked against the issue's fidelity goals."""

    row: str
    sparsity: float
    goal: str
    numbers: str
    met: str  # seed means: yes, no; intervals: met, missed, not separable at n = …; collapsed

    def line(self) -> str:
        return (
            f"| {self.row} | {100 * self.sparsity:g}% | {self.goal} | {self.numbers} | {self.met} |"
        )


def goal_check(
    task: str,
    records: Sequence[Mapping[str, Any]],
    seeds: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[str], list[GoalRow]]:
    """The references the goals are measured against (as text) and every debiased
    mask-training row's verdict: from paired intervals when `seeds` (per-seed records) are
    given, else from seed means."""
    roles = ROLES.get(task)
    if roles is None:
        return [], []
    if seeds is not None:
        return interval_goal_check(roles, records, seeds)
    index = _index(records)
    ce, poe = "dense CE", "dense poe"
    ce_id = _mean(index, ce, 0.0, roles["id"])
    ce_all = _mean(index, ce, 0.0, roles["overall"])
    poe_robust = _mean(index, poe, 0.0, roles["robust"])
    if ce_id is None:
        return ["No dense CE reference in this study: goals not checked."], []
    preamble = [
        f"Dense CE: {roles['id']} {_pct(ce_id)}, {roles['overall']} {_pct(ce_all)}; "
        f"dense PoE {roles['robust_name']} {_pct(poe_robust)} (seed means).",
    ]
    checked = []
    rows = [r for r in dict.fromkeys(rec["row"] for rec in records if rec["role"] == "search")]
    for row in rows:
        for sparsity, id_margin in ((0.5, 0.01), (0.7, 0.03)):
            row_id = _mean(index, row, sparsity, roles["id"])
            if row_id is None:
                continue
            robust = _mean(index, row, sparsity, roles["robust"])
            overall = _mean(index, row, sparsity, roles["overall"])
            collapsed = any(
                rec["collapsed"]
                for rec in records
                if rec["row"] == row and float(rec["sparsity"]) == sparsity
            )
            checks = [row_id >= ce_id - id_margin]
            text = f"ID {_vs(row_id, ce_id - id_margin)}"
            if poe_robust is not None and robust is not None:
                checks.append(robust >= poe_robust)
                text += f"; {roles['robust_name']} {_vs(robust, poe_robust)}"
            if sparsity == 0.5 and ce_all is not None and overall is not None:
                checks.append(overall >= ce_all)
                text += f"; overall {_vs(overall, ce_all)}"
            goal = f"ID ≥ dense CE − {round(100 * id_margin)}, robust ≥ dense PoE" + (
                ", overall ≥ dense CE" if sparsity == 0.5 else ""
            )
            met = "collapsed" if collapsed else ("yes" if all(checks) else "no")
            checked.append(GoalRow(row, sparsity, goal, text, met))
    return preamble, checked


GOALS = ((0.5, 0.01), (0.7, 0.03))  # sparsity, how far ID may fall below dense CE


def _paired(
    seeds: Sequence[Mapping[str, Any]], row: str, ref: str, sparsity: float, metric: str
) -> PairedDifference | None:
    try:
        found = compare_rows(seeds, row, ref, sparsity)
    except ComparisonError:
        return None
    return next((d for d in found if d.metric == metric), None)


def _interval_text(name: str, d: PairedDifference, bound: float) -> str:
    interval = "no interval" if d.low is None else f"[{_pp(d.low)}, {_pp(d.high)}]"
    return f"{name} {_pp(d.mean_difference)} {interval} vs {_pp(bound)}: {d.verdict(bound)}"


def _pp(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


def interval_goal_check(
    roles: Mapping[str, str],
    records: Sequence[Mapping[str, Any]],
    seeds: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[GoalRow]]:
    """The goals as paired differences to the dense references: `row − dense CE` on ID (bound
    −margin) and overall (bound 0, at 50%), `row − dense PoE` on the robust class (bound 0)."""
    ce, poe = "dense CE", "dense poe"
    present = {r["row"] for r in seeds}
    if ce not in present:
        return ["No dense CE reference with per-seed records: goals not checked."], []
    preamble = [
        f"Each goal is a paired difference `row − reference` over the seeds both share, in "
        f"percentage points, with its {INTERVAL}: met when the whole interval clears the "
        "bound, missed when the whole interval falls short, else not separable."
    ]
    checked = []
    rows = dict.fromkeys(rec["row"] for rec in records if rec["role"] == "search")
    for row in rows:
        for sparsity, id_margin in GOALS:
            id_diff = _paired(seeds, row, ce, sparsity, roles["id"])
            if id_diff is None:
                continue
            goals = [("ID − dense CE", id_diff, -id_margin)]
            robust = poe in present and _paired(seeds, row, poe, sparsity, roles["robust"])
            if robust:
                goals.append((f"{roles['robust_name']} − dense PoE", robust, 0.0))
            overall = sparsity == 0.5 and _paired(seeds, row, ce, sparsity, roles["overall"])
            if overall:
                goals.append(("overall − dense CE", overall, 0.0))
            collapsed = any(
                rec["collapsed"]
                for rec in records
                if rec["row"] == row and float(rec["sparsity"]) == sparsity
            )
            verdicts = [d.verdict(bound) for _, d, bound in goals]
            if collapsed:
                met = "collapsed"
            elif "missed" in verdicts:
                met = "missed"
            elif all(v == "met" for v in verdicts):
                met = "met"
            else:
                met = f"not separable at n = {min(d.n for _, d, _ in goals)}"
            text = "; ".join(_interval_text(name, d, bound) for name, d, bound in goals)
            goal = f"ID ≥ dense CE − {round(100 * id_margin)}, robust ≥ dense PoE" + (
                ", overall ≥ dense CE" if sparsity == 0.5 else ""
            )
            checked.append(GoalRow(row, sparsity, goal, text, met))
    return preamble, checked


def format_goals(
    preamble: list[str], checked: Sequence[GoalRow], paired: bool = False
) -> list[str]:
    """The goal table as markdown lines, under its references."""
    if not checked:
        return preamble
    numbers = "paired differences, 95% interval" if paired else "seed means"
    return [
        *preamble,
        "",
        f"| row | sparsity | goal | numbers ({numbers}) | met |",
        "|---|---|---|---|---|",
        *(g.line() for g in checked),
    ]


def goal_lines(
    task: str,
    records: Sequence[Mapping[str, Any]],
    seeds: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """The issue's fidelity goals for every debiased mask-training row of the study."""
    return format_goals(*goal_check(task, records, seeds), paired=seeds is not None)


def comparison_lines(task: str, comparisons: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The study's paired differences on the headline metrics of its task."""
    roles = ROLES.get(task)
    if not comparisons or roles is None:
        return []
    metrics = [roles[k] for k in ("id", "overall", "other", "robust")]
    diffs = [
        PairedDifference(**{**c, "seeds": tuple(c["seeds"])})
        for c in comparisons
        if c["metric"] in metrics
    ]
    diffs.sort(key=lambda d: metrics.index(d.metric))
    return [
        f"Paired differences (a − b in percentage points over the seeds both share; {INTERVAL}):",
        "",
        comparison_text(diffs),
        "",
    ]


def bias_lines(folder: Path) -> list[str]:
    """What each bias model of the study predicts: on its own training rows (mean
    p(entailment) of entailed vs other pairs) and on the OOD sets (share called entailment)."""
    path = folder / "bias_models.json"
    models = json.loads(path.read_text()) if path.exists() else []
    if not models:
        return []
    lines = [
        "Bias models (an overlap model should call nearly every HANS pair entailment):",
        "",
        "| bias model | train: mean p(ent) entailed / other | OOD: accuracy, share called "
        "entailment | used by |",
        "|---|---|---|---|",
    ]
    for m in models:
        pe = m.get("mean_p_entailment") or {}
        train = (
            f"{pe['gold_entailment']:.3f} / {pe['gold_not_entailment']:.3f}"
            if {"gold_entailment", "gold_not_entailment"} <= set(pe)
            else f"mean p(gold) {m.get('mean_gold_prob', float('nan')):.3f}"
        )
        ood = "; ".join(
            f"{name}: skipped"
            if "skipped" in o
            else f"{name}: {_pct(o.get('accuracy'))}%"
            + (
                f", {_pct(o['entailment_share'])}% called entailment"
                if o.get("entailment_share") is not None
                else ""
            )
            for name, o in (m.get("ood") or {}).items()
        )
        name = f"{m.get('kind')}, {m.get('fit')}, class weight {m.get('class_weight')}"
        lines.append(f"| {name} | {train} | {ood or '–'} | {', '.join(m['rows'])} |")
    return [*lines, ""]


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings, as paired differences in one study: each check is
    (row, reference, the row's sparsity, metric, bound, what it shows)."""

    title: str
    claim: str
    study: str
    checks: tuple[tuple[str, str, float, str, float, str], ...]


FINDINGS = (
    Finding(
        "1. Sparse and robust subnetworks exist",
        "a 50% PoE mask keeps ID accuracy within 1 point of dense CE and is more robust "
        "(HANS non-entailed and overall above dense CE)",
        "mnli-structured",
        (
            ("unstructured poe 50%", "dense CE", 0.5, "dev.accuracy", -0.01, "dev − dense CE"),
            ("unstructured poe 50%", "dense CE", 0.5, "hans.non_entailed", 0.0,
             "HANS non-entailed − dense CE"),
            ("unstructured poe 50%", "dense CE", 0.5, "hans.accuracy", 0.0,
             "HANS − dense CE"),
        ),
    ),
    Finding(
        "2. Sparse and almost unbiased subnetworks exist (the OOD upper bound)",
        "a 50% CE mask trained with HANS-train data keeps dev and held-out HANS within 1 point "
        "of the dense model trained the same way (the study's `dense CE`, which saw HANS-train "
        "too), and is more robust on the held-out HANS half than dense CE without HANS-train",
        "mnli-upper-bound",
        (
            ("loss none", "dense CE", 0.5, "dev.accuracy", -0.01,
             "dev: mask − dense, both with HANS-train"),
            ("loss none", "dense CE", 0.5, "hans.accuracy", -0.01,
             "HANS: mask − dense, both with HANS-train"),
            ("loss none", "without HANS-train: dense start", 0.5, "hans.accuracy", 0.0,
             "HANS: mask with HANS-train − dense CE without"),
            ("loss none", "without HANS-train: dense start", 0.5, "hans.non_entailed", 0.0,
             "HANS non-entailed: mask with − dense CE without"),
        ),
    ),
    Finding(
        "3. A search from an early dense checkpoint is nearly as good",
        "PoE mask training from the dense model stopped at 25% and at 50% of its steps is, at "
        "each, within 1 point of the search from the finished dense model (dev and HANS)",
        "mnli-early-start",
        (
            ("stop_at_step 141", "stop_at_step null", 0.5, "dev.accuracy", -0.01,
             "dev: 25% − 100% of dense steps"),
            ("stop_at_step 141", "stop_at_step null", 0.5, "hans.accuracy", -0.01,
             "HANS: 25% − 100%"),
            ("stop_at_step 282", "stop_at_step null", 0.5, "dev.accuracy", -0.01,
             "dev: 50% − 100%"),
            ("stop_at_step 282", "stop_at_step null", 0.5, "hans.accuracy", -0.01,
             "HANS: 50% − 100%"),
        ),
    ),
)  # fmt: skip


def finding_lines(studies: Sequence[Study]) -> list[str]:
    """For each of the paper's three findings: whether the study it rests on reproduces it, as
    paired differences with intervals, or that the study has not been run (or lacks rows)."""
    by_name = {study.folder.name: study for study in studies}
    lines = [
        "## The paper's three findings at this scale",
        "",
        f"Each check is a paired difference `row − reference` over the seeds both share, in "
        f"percentage points, with its {INTERVAL}, against the bound the claim needs: reproduced "
        "when every check is met, not reproduced when one is missed, else not separable at "
        "this n.",
        "",
    ]
    for finding in FINDINGS:
        lines += [f"### {finding.title}", "", f"Claim: {finding.claim}.", ""]
        study = by_name.get(finding.study)
        if study is None or not study.seeds:
            lines += [f"Not shown yet: the study `{finding.study}` has not been run "
                      "(or has no per-seed records).", ""]  # fmt: skip
            continue
        rows, verdicts = [], []
        for row, ref, sparsity, metric, bound, what in finding.checks:
            d = _paired(study.seeds, row, ref, sparsity, metric)
            if d is None:
                rows.append(f"| {what} | – | – | {_pp(bound)} | no paired seeds yet |")
                verdicts.append("missing")
                continue
            interval = "–" if d.low is None else f"[{_pp(d.low)}, {_pp(d.high)}]"
            verdict = d.verdict(bound)
            verdicts.append(verdict)
            rows.append(
                f"| {what} | {_pp(d.mean_difference)} (n = {d.n}) | {interval} | {_pp(bound)} | "
                f"{verdict} |"
            )
        if "missed" in verdicts:
            overall = "**not reproduced** at this scale"
        elif all(v == "met" for v in verdicts):
            overall = "**reproduced** at this scale"
        elif "missing" in verdicts:
            overall = "**not decided yet**: some rows have no finished seeds"
        else:
            overall = "**not separable** at this n: more seeds are needed to decide"
        lines += [
            f"Study: [{finding.study}](#{_anchor(study.meta.get('name') or finding.study)}). "
            f"Verdict: {overall}.",
            "",
            "| check | mean difference | 95% interval | bound | verdict |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    return lines


SCORE_LR_STUDY = "mnli-score-lr"
# Finding 1's checks, read at each score learning rate: (metric, bound, column name)
SCORE_LR_CHECKS = (
    ("dev.accuracy", -0.01, "dev − dense CE"),
    ("hans.accuracy", 0.0, "HANS − dense CE"),
    ("hans.non_entailed", 0.0, "non-ent − dense CE"),
)
# What the debiasing loss adds over the CE mask trained at the same rate: (metric, column name)
SCORE_LR_VS_CE = (("dev.accuracy", "dev − CE mask"), ("hans.non_entailed", "non-ent − CE mask"))


def _cell(d: PairedDifference | None, bound: float | None = None) -> str:
    if d is None:
        return "–"
    interval = "" if d.low is None else f" [{_pp(d.low)}, {_pp(d.high)}]"
    verdict = "" if bound is None else f" {d.verdict(bound)}"
    return f"{_pp(d.mean_difference)}{interval}{verdict}"


def score_lr_lines(studies: Sequence[Study]) -> list[str]:
    """The score-learning-rate study (issue 18 item 2): at each rate, finding 1's checks for
    the 50% PoE mask against dense CE (paired by seed), what PoE adds over the CE mask at the
    same rate, and how far the PoE mask moved from one-shot magnitude pruning; then which
    rates meet every check. Nothing when the study is not committed."""
    from srcore.jobspec.study import StudySpec, expand_study
    from srcore.pruning.score_lr import PAPER_SCORE_LR

    study = next((s for s in studies if s.folder.name == SCORE_LR_STUDY), None)
    if study is None or not study.seeds:
        return []
    children = expand_study(StudySpec.model_validate(study.meta))
    by_setting = {
        (c.setting.get("debias.loss"), c.setting.get("training.learning_rate")): c.label
        for c in children
        if c.role == "search"
    }
    rates = sorted({lr for loss, lr in by_setting if loss == "poe" and lr is not None})
    index = _index(study.records)
    title = study.meta.get("name") or study.folder.name
    lines = [
        "## The score learning rate: does a faster search search?",
        "",
        f"Study: [{study.folder.name}](#{_anchor(title)}). At each score learning rate, "
        "finding 1's checks for the 50% PoE mask (paired by seed against dense CE: dev ≥ −1, "
        "HANS and HANS non-entailed ≥ 0), what PoE adds over the CE mask trained at the same "
        f"rate, and the share of mask entries off one-shot magnitude pruning; {INTERVAL}.",
        "",
        "| score lr | n | "
        + " | ".join(name for _, _, name in SCORE_LR_CHECKS)
        + " | "
        + " | ".join(name for _, name in SCORE_LR_VS_CE)
        + " | ≠ magnitude | every check |",
        "|---|---|" + "---|" * (len(SCORE_LR_CHECKS) + len(SCORE_LR_VS_CE) + 2),
    ]
    meeting = []
    for lr in rates:
        poe, ce = by_setting[("poe", lr)], by_setting.get(("none", lr))
        checks = [
            (_paired(study.seeds, poe, "dense CE", 0.5, metric), bound)
            for metric, bound, _ in SCORE_LR_CHECKS
        ]
        found = [d for d, _ in checks if d is not None]
        if not found:
            lines.append(f"| {lr:g} | 0 | not run yet |" + " |" * (len(SCORE_LR_CHECKS) + 3))
            continue
        vs_ce = [ce and _paired(study.seeds, poe, ce, 0.5, m) for m, _ in SCORE_LR_VS_CE]
        moved = index.get((poe, 0.5, "mask.differ_fraction"))
        verdicts = [d.verdict(bound) if d else "missing" for d, bound in checks]
        if "missed" in verdicts:
            every = "missed"
        elif all(v == "met" for v in verdicts):
            every = "met"
            meeting.append(lr)
        else:
            every = f"not separable at n = {min(d.n for d in found)}"
        lines.append(
            f"| {lr:g} | {min(d.n for d in found)} | "
            + " | ".join(_cell(d, bound) for d, bound in checks)
            + " | "
            + " | ".join(_cell(d or None) for d in vs_ce)
            + f" | {cell_text(moved)} | {every} |"
        )
    if meeting:
        verdict = (
            f"Rates meeting every check: {', '.join(f'{lr:g}' for lr in meeting)}. The default "
            f"score learning rate is {PAPER_SCORE_LR:g} (srcore/pruning/score_lr.py)."
        )
    else:
        verdict = (
            "No rate meets every check at this n, so the default score learning rate stays "
            f"the paper's {PAPER_SCORE_LR:g} (srcore/pruning/score_lr.py)."
        )
    return [*lines, "", verdict, ""]


def summary_lines(studies: Sequence[Study]) -> list[str]:
    """One line per study: its scale and how many of its rows met the fidelity goals."""
    lines = [
        "| study | train rows | seeds | rows meeting every goal | collapsed |",
        "|---|---|---|---|---|",
    ]
    for study in studies:
        base = study.meta["base"]
        _, checked = goal_check(base["task"], study.records, study.seeds)
        verdicts = [g.met for g in checked]
        met = [f"{g.row} ({100 * g.sparsity:g}%)" for g in checked if g.met in MET]
        lines.append(
            f"| [{study.folder.name}](#{_anchor(study.meta.get('name') or study.folder.name)}) | "
            f"{base['data'].get('max_train_examples') or 'all'} | "
            f"{len(base['training']['seeds'])} | "
            f"{len(met)} of {len(verdicts)}"
            + (f": {', '.join(met)}" if met else "")
            + f" | {verdicts.count('collapsed')} |"
        )
    return [*lines, ""]


MET = ("yes", "met")


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


SPEED = ROOT / "bench" / "results" / "structured_speed.json"
SPEED_KEYS = ("MNLI-length b32", "HANS-length b32", "MNLI-length b1")


def row_structures(meta: Mapping[str, Any]) -> dict[str, str]:
    """Each row of the study (by label) and the structure of its subnetwork ("dense" for a
    dense reference)."""
    from srcore.jobspec.study import StudySpec, expand_study

    out = {}
    for child in expand_study(StudySpec.model_validate(meta)):
        out[child.label] = "dense" if child.role == "reference" else child.spec.pruning.structure
    return out


def speed_lines(study: Study, speed_path: Path = SPEED) -> list[str]:
    """For a study with a structured row: what each structure's exported checkpoint weighs
    and how fast it runs on the CPU, from bench/structured_speed.py's report (MiniLM at the
    bench's sparsity; the speed depends on the shapes kept, not on which units are kept)."""
    structures = row_structures(study.meta)
    if set(structures.values()) <= {"dense", "unstructured"} or not speed_path.exists():
        return []
    report = json.loads(speed_path.read_text())
    variants = report["variants"]
    lines = [
        f"Size and CPU speed of each structure's exported checkpoint "
        f"(`bench/structured_speed.py`, {report['date']}, {report['cpu']}, "
        f"{report['threads']} thread, load {report['load_average']:.1f}, median of "
        f"{report['repeats']}; MiniLM pruned to {100 * report['sparsity']:g}% by one-shot "
        "magnitude of the same unit: speed depends on the shapes kept, not on which units; "
        "ratio = dense PyTorch latency / the variant's, > 1 is faster):",
        "",
        "| structure | rows | parameters | MB | "
        + " | ".join(f"PyTorch {k}" for k in SPEED_KEYS)
        + " | ONNX int8 MNLI-length b32 |",
        "|---|---|---|---|" + "---|" * len(SPEED_KEYS) + "---|",
    ]
    for structure in ("dense", "unstructured", "ffn_neurons", "ffn_neurons+heads"):
        rows = [label for label, s in structures.items() if s == structure]
        if not rows or structure not in variants:
            continue
        v = variants[structure]
        int8 = variants.get(f"{structure} onnx int8", {}).get("speedup", {})
        cells = [f"{v['speedup'][k]:.2f}×" for k in SPEED_KEYS]
        onnx = f"{int8['MNLI-length b32']:.2f}×" if "MNLI-length b32" in int8 else "–"
        lines.append(
            f"| {structure} | {', '.join(rows)} | {v['params']:,} | {v['mb']:.1f} | "
            + " | ".join(cells)
            + f" | {onnx} |"
        )
    return [*lines, ""]


def part_lines(info: Mapping[str, Any]) -> list[str]:
    """For a table merged from several study folders (`srnet study merge`): which seeds of
    which rows each folder ran, where, and with what precision."""
    parts = info.get("parts") or []
    if not parts:
        return []
    folders = "1 study folder" if len(parts) == 1 else f"{len(parts)} study folders"
    lines = [f"- **Merged** from {folders} (n differs by row where a folder ran only some "
             "rows):"]  # fmt: skip
    for part in parts:
        rows = part.get("rows") or {}
        held = "; ".join(f"{row} {seeds}" for row, seeds in rows.items())
        hours = (part.get("job_seconds_total") or 0) / 3600
        lines.append(
            f"  - `{part.get('command', part['folder'])}`: seeds {part.get('seeds')} of "
            f"{len(rows)} rows ({held}); {hours:.2f} h of job wall time on "
            f"{part.get('cpu', '?')}, `precision: auto` → "
            f"{part.get('auto_precision') or 'not recorded'}"
            + (f" ({part['auto_precision_source']})" if part.get("auto_precision_source") else "")
            + "."
            + (f" {part['job_seconds_note']}." if part.get("job_seconds_note") else "")
        )
    return lines


def study_section(study: Study) -> list[str]:
    folder, records, meta = study.folder, study.records, study.meta
    info = json.loads((folder / "run_info.json").read_text())
    task = meta["base"]["task"]
    name = meta.get("name") or folder.name
    base = meta["base"]
    hours = info.get("job_seconds_total", 0) / 3600
    lines = [
        f"## {name}",
        "",
        f"Study file: `{info.get('study_file', '?')}`; results: `results/studies/{folder.name}/`.",
        "",
        "```",
        info.get("command", f"srnet study run {info.get('study_file', 'STUDY')} --out OUT"),
        "```",
        "",
        (
            ""
            if info.get("complete", True) or info.get("parts")
            else f"- **Incomplete:** {info.get('jobs_done')} of {info.get('jobs')} jobs had "
            "finished when this table was generated; rows without numbers did not run.\n"
        )
        + "".join(f"{line}\n" for line in part_lines(info))
        + f"- {info.get('jobs', '?')} jobs, {hours:.2f} h of job wall time on "
        f"{info.get('cpu', '?')} ({info.get('cores', '?')} cores, "
        f"{info.get('torch_threads', '?')} torch threads), GPU: {info.get('gpu') or 'none'}; "
        f"torch {info.get('versions', {}).get('torch', '?')}.",
        f"- Data: {base['data'].get('max_train_examples') or 'all'} bundled training rows, "
        f"at most {base['data'].get('max_eval_examples') or 'all'} rows per evaluation set; "
        f"seeds {base['training']['seeds']}; selection on ID dev only.",
        "- Cells: mean ± sd (n seeds) in percent; ⚠ marks seeds whose subnetwork answered one "
        "class for ≥ 95% of a set (collapsed: not a robustness gain). `≠ magnitude`: share of "
        "mask entries that differ from one-shot magnitude pruning of the start model.",
        "",
        markdown_table(records),
        "",
    ]
    lines += speed_lines(study)
    if any(r["metric"].startswith("hans.lexical_overlap") for r in records):
        lines += ["HANS by heuristic:", "", hans_heuristics_table(records), ""]
    lines += bias_lines(folder)
    lines += comparison_lines(task, study.comparisons)
    preamble, checked = goal_check(task, records, study.seeds)
    if study.seeds is None:
        note = "This study has no per-seed records: the goals are read from seed means."
        preamble = [*preamble, "", note]
    verdicts = [g.met for g in checked]
    lines += ["Fidelity goals:", "", *format_goals(preamble, checked, study.seeds is not None), ""]
    if verdicts:
        met = sum(v in MET for v in verdicts)
        separable = sum(v.startswith("not separable") for v in verdicts)
        lines += [
            f"Goals met by {met} of {len(verdicts)} rows "
            f"({verdicts.count('collapsed')} collapsed"
            + (f", {separable} not separable" if separable else "")
            + ").",
            "",
        ]
    if (folder / "plot.png").exists():
        lines += [f"![{name}](../results/studies/{folder.name}/plot.png)", ""]
    for plot in sorted(folder.glob("plot-*.png")):  # against a numeric axis (study_axis_plot)
        axis = plot.stem.removeprefix("plot-")
        lines += [f"![{name}: against {axis}](../results/studies/{folder.name}/{plot.name})", ""]
    return lines


def headline_table(studies: Sequence[Study]) -> str:
    """The README's headline rows (mean ± sd over seeds, n in the first column)."""
    by_name = {study.folder.name: _index(study.records) for study in studies}
    lines = [
        "| model | n | MNLI dev | HANS | entailed | non-entailed |",
        "|---|---|---|---|---|---|",
    ]
    for label, name, row, sparsity in HEADLINE:
        index = by_name[name]
        cells = [index[(row, sparsity, metric)] for metric in HEADLINE_METRICS]
        text = [f"{_pct(c['mean'])} ± {_pct(c['sd'] or 0.0)}" for c in cells]
        lines.append(f"| {label} | {cells[0]['n']} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def write_readme_headline(table: str) -> None:
    """Replace the README's headline table between its markers."""
    text = README.read_text()
    start, end = text.index(HEADLINE_BEGIN), text.index(HEADLINE_END)
    README.write_text(text[: start + len(HEADLINE_BEGIN)] + "\n" + table + "\n" + text[end:])


def main() -> int:
    found = {p.name: p for p in STUDIES.glob("*") if (p / "table.csv").exists()}
    folders = [found[n] for n in ORDER if n in found] + [
        found[n] for n in sorted(found) if n not in ORDER
    ]
    studies = [Study.read(folder) for folder in folders]
    lines = [
        "# Results",
        "",
        "Generated by `scripts/make_results.py` from the studies' CSV exports in "
        "`results/studies/`; do not edit by hand. Every number is a mean over seeds of the "
        "selected point (best ID dev in the selection window); OOD sets were never used for "
        "selection.",
        "",
    ]
    if not studies:
        lines.append("No study has been run yet.")
    else:
        lines += summary_lines(studies)
        lines += finding_lines(studies)
        lines += score_lr_lines(studies)
    for study in studies:
        lines += study_section(study)
    OUT.write_text("\n".join(lines).rstrip() + "\n")
    if all(name in found for _, name, _, _ in HEADLINE):
        write_readme_headline(headline_table(studies))
    print(f"wrote {OUT} from {len(folders)} studies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["cell_text", "goal_check", "goal_lines", "study_section"]

"""Where a search writes what: the one place that names its files (torch-free).

    OUT/metrics.json                                      the whole report (`SearchResult`)
    OUT/report.png                                        sparsity vs ID/OOD accuracy
    OUT/masks/seed-<seed>/mask-<sparsity>.safetensors     one bit-packed mask per unit
    OUT/checkpoints/seed-<seed>/sparsity-<sparsity>/      save_pretrained directory per unit
    OUT/onnx/seed-<seed>/sparsity-<sparsity>/             its ONNX model (export.onnx), if any
    OUT/work/                                             resumable state (not an artifact)
    OUT/work/seed-<seed>/done/unit-<sparsity>.json        finished units, read back on resume

The service stores a job's artifacts flat, under names that carry the job (`job_tag`: the
slugged job name and the short id), so downloads of several jobs into one folder never collide:
`artifact_names(job, seed, sparsity)` for a unit's mask and checkpoint, `report_names(job)` for
metrics.json and the plot.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

REPORT_FILE = "metrics.json"
PLOT_FILE = "report.png"


def sparsity_tag(sparsity: float) -> str:
    """Sparsity in file names: two decimals (0.5 → "0.50")."""
    return f"{sparsity:.2f}"


class ArtifactNames(NamedTuple):
    """Flat download names of one unit's artifacts (one folder for every seed × sparsity)."""

    mask: str
    checkpoint: str  # a tar archive of the checkpoint directory
    onnx: str  # a tar archive of the ONNX folder (jobs with export.onnx)

    @property
    def checkpoint_root(self) -> str:
        """The folder the checkpoint archive unpacks to."""
        return self.checkpoint.removesuffix(".tar")

    @property
    def onnx_root(self) -> str:
        """The folder the ONNX archive unpacks to."""
        return self.onnx.removesuffix(".tar")


SHORT_ID_CHARS = 8
_SLUG_CHARS = 40


def short_id(job_id: object) -> str:
    """The first 8 hex digits of a job id (what the CLI accepts as a prefix)."""
    return str(job_id).replace("-", "").lower()[:SHORT_ID_CHARS]


def slug(
    text: str,
    *,
    keep: str = "",
    fill: str = "-",
    lower: bool = True,
    max_chars: int = _SLUG_CHARS,
    empty: str = "",
) -> str:
    """`text` as a file-name-safe word: accents folded to ASCII, every run of anything but
    letters, digits and the characters of `keep` becomes one `fill`, no `fill` at either end,
    at most `max_chars` long, `empty` when nothing is left. By default lower-case letters,
    digits and single hyphens ("MNLI · PoE 50%" → "mnli-poe-50")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    if lower:
        ascii_text = ascii_text.lower()
    allowed = ("a-z0-9" if lower else "A-Za-z0-9") + re.escape(keep)
    word = re.sub(f"[^{allowed}]+", fill, ascii_text).strip(fill)
    return word[:max_chars].strip(fill) or empty


def child_dir_name(key: str) -> str:
    """A study child's folder under OUT/jobs/, from its key ("debias.loss=poe; seed=1" →
    "debias.loss=poe_seed=1"): case, dots and "=" kept so the folder reads as its setting."""
    return slug(key, keep="._=-", fill="_", lower=False, max_chars=120, empty="base")


def job_tag(job_id: object, name: str | None = None) -> str:
    """What a job's file names start with: the slugged name (when it has one) and the short
    id, which keeps two jobs with the same name apart ("mnli-poe-3f2a1b9c")."""
    named = slug(name or "")
    return f"{named}-{short_id(job_id)}" if named else short_id(job_id)


def artifact_names(job: str, seed: int, sparsity: float) -> ArtifactNames:
    """`job` is a `job_tag`."""
    tag = sparsity_tag(sparsity)
    return ArtifactNames(
        f"{job}-mask-seed{seed}-sparsity{tag}.safetensors",
        f"{job}-checkpoint-seed{seed}-sparsity{tag}.tar",
        f"{job}-onnx-seed{seed}-sparsity{tag}.tar",
    )


class ReportNames(NamedTuple):
    report: str  # metrics.json
    plot: str  # report.png


def report_names(job: str) -> ReportNames:
    return ReportNames(f"{job}-{REPORT_FILE}", f"{job}-{PLOT_FILE}")


@dataclass(frozen=True)
class OutputLayout:
    """The files of one search under `root` (a job's work folder, `srnet search --out`)."""

    root: Path

    @property
    def metrics_path(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def plot_path(self) -> Path:
        return self.root / PLOT_FILE

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def default_cache_dir(self) -> Path:
        return self.work_dir / "cache"

    def mask_path(self, seed: int, sparsity: float) -> Path:
        return self.root / "masks" / f"seed-{seed}" / f"mask-{sparsity_tag(sparsity)}.safetensors"

    def checkpoint_dir(self, seed: int, sparsity: float) -> Path:
        return self.root / "checkpoints" / f"seed-{seed}" / f"sparsity-{sparsity_tag(sparsity)}"

    def onnx_dir(self, seed: int, sparsity: float) -> Path:
        return self.root / "onnx" / f"seed-{seed}" / f"sparsity-{sparsity_tag(sparsity)}"

    @property
    def dense_reference_dir(self) -> Path:
        """The dense model exported once, what the checkpoints are measured against."""
        return self.work_dir / "dense-reference"

    def seed_work_dir(self, seed: int) -> Path:
        """Resumable trainer state of one seed's search."""
        return self.work_dir / f"seed-{seed}"

    def done_dir(self, seed: int) -> Path:
        return self.seed_work_dir(seed) / "done"

    def unit_file(self, seed: int, sparsity: float) -> Path:
        return self.done_dir(seed) / f"unit-{sparsity_tag(sparsity)}.json"

    def finished_unit_files(self, seed: int | None = None) -> list[Path]:
        seeds = "seed-*" if seed is None else f"seed-{seed}"
        return sorted(self.work_dir.glob(f"{seeds}/done/unit-*.json"))

    def resume_points(self) -> dict[str, list[Any]]:
        """What an interrupted run left to resume from: trainer checkpoints (folder relative to
        work/ and step; see srcore.training.checkpoint) and finished units."""
        work = self.work_dir
        checkpoints = []
        for pointer in sorted(work.rglob("latest")) if work.is_dir() else []:
            name = pointer.read_text().strip()
            if not name.startswith("step-") or not (pointer.parent / name / "trainer.pt").exists():
                continue
            checkpoints.append({"path": pointer.parent.relative_to(work).as_posix(),
                                "step": int(name.removeprefix("step-"))})  # fmt: skip
        units = [p.relative_to(work).as_posix() for p in self.finished_unit_files()]
        return {"checkpoints": checkpoints, "finished_units": units}

"""Where a whole job's time goes: one fixed job spec run end to end, wall time per stage split
into training and evaluation, the evaluation share, and each part's useful FLOP/s against the
matrix-multiply ceiling of the precision the job computes in (bf16 where the CPU has it, else
fp32), measured in the same run.

    .venv/bin/python bench/job_time.py [--threads 2] [--out DIR] [--quick] [--model PATH]

The fixed job (issue 18 item 5): MNLI on all 8,999 bundled rows, dense CE fine-tune and 50%
PoE mask training (soft init), one seed, 2,000 rows per evaluation set, the headline study's
settings; `--quick` shrinks it to 256 rows and 8 steps per stage (a check that the bench
runs, not a measurement). No stage cache is shared: every stage runs.

Timing comes from the job's own callbacks: a stage starts at `on_stage`; while it trains,
progress arrives with phase "train", while it evaluates with phase "evaluate", and an
evaluation ends with its metrics; time between them is "other" (data, bias model, export,
saving). Useful FLOP counts the encoder's per-token matrices only: 6 · P · tokens for a
training step (forward and backward; a mask-training step costs about the same), 2 · P ·
tokens for an evaluation forward, with P the parameters of those matrices and tokens the real
(unpadded) tokens of the examples processed. Prints `job core-minutes: X` (wall × threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_throughput's GEMM ceiling

from srcore.jobspec.callbacks import Callbacks, Progress
from srcore.jobspec.results import CurveId


def job_spec(quick: bool, model: str) -> dict[str, Any]:
    """The fixed job; `quick`: a small version of it."""
    spec: dict[str, Any] = {
        "task": "mnli",
        "model": {"name_or_path": model},
        "data": {"max_eval_examples": 2000},
        "debias": {"loss": "poe"},
        "dense": {"loss": "none", "epochs": 2, "learning_rate": 5e-5},
        "pruning": {"method": "mask_training", "sparsities": [0.5], "init": "soft"},
        "training": {"epochs": 2, "eval_every": 94, "seeds": [1]},
        "evaluation": {"batch_size": 256},
    }
    if quick:
        spec["data"] = {"max_train_examples": 256, "max_eval_examples": 64}
        spec["dense"] = {"loss": "none", "max_steps": 8, "learning_rate": 5e-5}
        spec["training"] = {"max_steps": 8, "eval_every": 4, "batch_size": 16, "seeds": [1]}
    return spec


@dataclass
class StagePart:
    """One stage's time: training, evaluating, and the rest; work done in each."""

    train_s: float = 0.0
    eval_s: float = 0.0
    other_s: float = 0.0
    train_examples: int = 0
    evaluations: int = 0

    @property
    def wall_s(self) -> float:
        return self.train_s + self.eval_s + self.other_s


@dataclass
class StageClock(Callbacks):
    """Callbacks that split wall time by (stage, phase) as the job reports it."""

    clock: Callable[[], float] = time.perf_counter
    batch_size: int = 32
    parts: dict[str, StagePart] = field(default_factory=dict)
    _stage: str = "start"
    _phase: str = "other"  # train, eval or other
    _since: float | None = None
    _run_steps: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def _switch(self, stage: str, phase: str) -> None:
        now = self.clock()
        if self._since is not None:
            part = self.parts.setdefault(self._stage, StagePart())
            spent = now - self._since
            if self._phase == "train":
                part.train_s += spent
            elif self._phase == "eval":
                part.eval_s += spent
            else:
                part.other_s += spent
        self._stage, self._phase, self._since = stage, phase, now

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        self._switch(stage, "other")

    def on_progress(self, progress: Progress) -> None:
        phase = "eval" if progress.phase == "evaluate" else "train"
        if (progress.stage, phase) != (self._stage, self._phase):
            self._switch(progress.stage, phase)
        # steps of each run (stage, detail) so far: the largest step seen
        key = (progress.stage, progress.detail)
        self._run_steps[key] = max(self._run_steps.get(key, 0), progress.step)

    def on_metrics(self, curve: CurveId, step: int, metrics: dict[str, Any]) -> None:
        self.parts.setdefault(curve.stage, StagePart()).evaluations += 1
        self._switch(self._stage, "other")  # the evaluation is over; training resumes next

    def finish(self) -> None:
        self._switch(self._stage, "other")
        for (stage, _), steps in self._run_steps.items():
            self.parts.setdefault(stage, StagePart()).train_examples += steps * self.batch_size


def flop_report(
    parts: dict[str, StagePart],
    matrix_params: int,
    train_tokens: float,
    eval_tokens_per_evaluation: float,
    ceiling: float,
    precision: str = "bf16",
) -> list[str]:
    """One line per stage: wall, train/eval/other seconds, evaluation share, useful GFLOP/s of
    training and evaluation and their share of the matmul ceiling in the job's `precision`."""
    lines = []
    for stage, part in parts.items():
        if part.wall_s < 1e-3:
            continue
        text = (
            f"{stage:8s} wall {part.wall_s:8.1f} s  train {part.train_s:7.1f} s  "
            f"eval {part.eval_s:7.1f} s ({part.eval_s / part.wall_s:5.1%})  "
            f"other {part.other_s:6.1f} s"
        )
        if part.train_s > 0 and part.train_examples:
            useful = 6 * matrix_params * train_tokens * part.train_examples / part.train_s
            text += f"  train {useful / 1e9:6.1f} GFLOP/s = {useful / ceiling:5.1%} of {precision}"
        if part.eval_s > 0 and part.evaluations:
            work = 2 * matrix_params * eval_tokens_per_evaluation * part.evaluations
            text += f"  eval {work / part.eval_s / 1e9:6.1f} GFLOP/s = "
            text += f"{work / part.eval_s / ceiling:5.1%} of {precision}"
        lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> int:
    import torch
    from train_throughput import cpu_model, matmul_ceiling

    from srcore.jobspec.spec import JobSpec
    from srcore.pipeline.inputs import load_job_data, load_model
    from srcore.pipeline.run import run_search
    from srcore.pruning import prunable_weights
    from srcore.training import configure_cpu_threads
    from srcore.training.device import resolve_precision

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="job folder (default: temporary)")
    parser.add_argument("--quick", action="store_true", help="a small job: checks the bench runs")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model path or name")
    args = parser.parse_args(argv)

    threads = configure_cpu_threads(args.threads)
    spec = JobSpec.model_validate(job_spec(args.quick, args.model))
    data = load_job_data(spec)  # the same reading the job does: real token counts
    train_tokens = float(data.encoded_train.lengths.mean())
    eval_tokens = sum(float(s.encoded.lengths.sum()) for s in data.eval_sets)
    probe = load_model(data.model_path, data.labels, seed=0)
    params = dict(probe.named_parameters())
    names = [n for n in prunable_weights(probe, include_classifier=False) if ".layer." in n]
    matrix_params = sum(params[n].numel() for n in names)
    hidden, inter = probe.config.hidden_size, probe.config.intermediate_size
    del probe
    tokens = int(spec.training.batch_size * train_tokens)
    shapes = [(tokens, hidden, inter), (tokens, inter, hidden), (tokens, hidden, hidden)]
    # the ceiling of the precision the job computes in: bf16 where the CPU has it, else fp32
    precision = resolve_precision("auto", torch.device("cpu"))
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    ceiling = matmul_ceiling(dtype, torch.device("cpu"), shapes)
    print(
        f"{cpu_model()}, {threads} threads, torch {torch.__version__}, load avg "
        f"{os.getloadavg()[0]:.2f}; train {len(data.train.examples)} rows (mean "
        f"{train_tokens:.1f} tokens), evaluation sets "
        f"{', '.join(f'{s.name} {len(s.encoded.lengths)}' for s in data.eval_sets)}; "
        f"precision auto -> {precision}; {precision} matmul ceiling {ceiling / 1e9:.1f} GFLOP/s"
    )
    clock = StageClock(batch_size=spec.training.batch_size)
    with tempfile.TemporaryDirectory(prefix="srnet-job-time-") as tmp:
        out = args.out or Path(tmp) / "job"
        started = time.perf_counter()
        clock.on_stage("start")
        run_search(spec, out, clock, cache_dir=Path(tmp) / "cache")
        clock.finish()
        wall = time.perf_counter() - started
    report = flop_report(clock.parts, matrix_params, train_tokens, eval_tokens, ceiling, precision)
    for line in report:
        print(line)
    evaluating = sum(p.eval_s for p in clock.parts.values())
    print(f"job wall {wall:.1f} s, evaluation {evaluating:.1f} s = {evaluating / wall:.1%}")
    print(f"job core-minutes: {wall * threads / 60:.2f}  (goal <= 10 for the full job)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

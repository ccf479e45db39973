"""A terminal progress bar for `srnet search` (srcore callbacks → tqdm)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from srcore.jobspec.callbacks import Callbacks, Progress
from srcore.jobspec.results import CurveId


class TerminalProgress(Callbacks):
    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.key: tuple[str, str | None] | None = None

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        self._close()
        text = f"[{stage}]" + (f" {detail}" if detail else "")
        print(text, file=self.stream, flush=True)

    def on_progress(self, progress: Progress) -> None:
        key = (progress.stage, progress.detail)
        if key != self.key:
            self._close()
            label = progress.stage + (f" ({progress.detail})" if progress.detail else "")
            self.bar = tqdm(
                total=progress.total_steps,
                desc=label,
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
            )
            self.key = key
        assert self.bar is not None
        self.bar.n = progress.step
        if progress.examples_per_s:
            self.bar.set_postfix(ex_s=f"{progress.examples_per_s:.0f}", refresh=False)
        self.bar.refresh()

    def on_metrics(self, curve: CurveId, step: int, metrics: dict[str, Any]) -> None:
        parts = []
        for name, value in metrics.items():
            if isinstance(value, dict) and isinstance(value.get("accuracy"), float):
                parts.append(f"{name} {100 * value['accuracy']:.1f}")
        if "sparsity" in metrics:
            parts.append(f"sparsity {metrics['sparsity']:.2f}")
        line = f"  eval {curve.stage} step {step}: " + ", ".join(parts)
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.key = None

    def close(self) -> None:
        self._close()

"""The training loop: AdamW, linear warm-up/decay, grad clipping, evaluation, selection,
exact resume.

A stage of the pipeline (dense fine-tune, mask search, IMP, retrain) builds a `Trainer` with
its trainable parameters, its loss and its evaluation, plus `TrainerHooks` for what pruning
does between steps.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srcore.jobspec.callbacks import Callbacks, Cancelled, Progress
from srcore.jobspec.results import CurveId, evaluation_payload
from srcore.losses import debias_loss
from srcore.training.batching import Batch, LengthGroupedSampler, collate
from srcore.training.budget import evaluation_interval, planned_steps
from srcore.training.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from srcore.training.device import (
    Precision,
    apply_numerics,
    autocast,
    describe_precision,
    pick_device,
    resolve_precision,
)
from srcore.training.encoding import EncodedSplit
from srcore.training.memory import DeviceOutOfMemoryError, out_of_memory

LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]
# evaluate_fn(model) -> metrics; one that also takes `progress` is handed a
# progress(examples_done, examples_total) to call as it goes (srcore.evaluation's does).
EvaluateFn = Callable[..., dict[str, Any]]

logger = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    # End early at this step while the LR schedule still spans the whole run: an early
    # checkpoint of a longer fine-tune (search from early checkpoints).
    stop_at_step: int | None = None
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    grad_clip: float | None = 1.0
    eval_every: int | None = None  # None: 10 evaluations per run
    select_last_fraction: float = 0.3
    seed: int = 0
    # auto: bf16 autocast where the device multiplies bf16 natively (CUDA sm >= 8.0, CPUs
    # with AMX / AVX512-BF16), else fp32. Weights, optimizer state, masks, scores and the
    # loss stay fp32 either way.
    precision: Precision = "auto"
    # fp32 matrix products on TF32 tensor cores where the GPU has them (sm >= 8.0).
    tf32: bool = True
    # torch.use_deterministic_algorithms and cuBLAS's fixed workspace: bit-identical repeats
    # and resumes on a GPU (on the CPU they are bit-identical anyway).
    deterministic: bool = False
    checkpoint_dir: Path | None = None
    checkpoint_every: int | None = None  # also written at the end and when stopped
    # Seconds between progress callbacks, while training and while evaluating; the first
    # step and the last are always reported. A timer, not a step count: a slow machine's
    # bar moves as often as a fast one's.
    progress_every_s: float = 2.0
    group_by_length: bool = True
    mega_batch_mult: int = 50
    pad_to_multiple_of: int | None = None  # None: 8 on CUDA (tensor cores), none on CPU
    stage: str = "train"  # the name callbacks see
    detail: str | None = None  # e.g. "seed 1, sparsity 0.5"
    # The curve the evaluations belong to, sent with every `on_metrics` (receivers need not
    # parse `detail`); None: CurveId(stage, seed).
    curve: CurveId | None = None


class TrainerHooks:
    """What a pruning method does around the loop. The default does nothing extra.

    Any object with these five methods will do (duck typing); subclassing is optional.
    """

    def after_optimizer_step(self, step: int) -> None:
        """After the optimizer and scheduler stepped; `step` counts finished steps."""

    def before_evaluate(self, step: int) -> dict[str, Any] | None:
        """Before every evaluation (e.g. reset thresholds so sparsity is exact).

        The returned dict is recorded with the evaluation (e.g. {"sparsity": 0.7}); its
        "selectable": False keeps the evaluation out of the best selection (a gradual run
        below its final sparsity).
        """
        return None

    def snapshot(self) -> Any:
        """What to keep of a new best evaluation (e.g. the masks); None: the trainer keeps a
        CPU copy of the model's state_dict."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """Extra state a resumed run needs (schedules, masks kept outside the model)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def state_dict_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class TrainResult:
    history: list[dict[str, Any]]  # {"step", "metrics", "train_loss", "info"} per evaluation
    best_step: int
    best_metrics: dict[str, Any]
    best_snapshot: Any
    total_steps: int
    examples_per_s: float
    train_seconds: float
    precision: str = "fp32"  # what `precision` resolved to: "bf16" or "fp32"

    @property
    def final_metrics(self) -> dict[str, Any]:
        return self.history[-1]["metrics"] if self.history else {}


class ResumeMismatchError(ValueError):
    """The checkpoint was written by a run with other settings; it cannot resume exactly."""


def debias_loss_fn(name: str) -> LossFn:
    """The loss of the spec (`none`, `poe`, `reweight`, `conf_reg`) over a batch's extras."""

    def loss_fn(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return debias_loss(
            name,
            logits,
            batch.labels,
            batch.extras.get("bias_probs"),
            batch.extras.get("teacher_probs"),
        )

    return loss_fn


def forward_logits(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out[0]


def linear_warmup_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def param_groups(params: Iterable[Any], weight_decay: float) -> list[dict[str, Any]]:
    """Tensors: decay on matrices only (not biases, LayerNorm). Dicts: used as given."""
    params = list(params)
    if params and isinstance(params[0], dict):
        return params
    matrices = [p for p in params if p.ndim >= 2]
    vectors = [p for p in params if p.ndim < 2]
    groups = [{"params": matrices, "weight_decay": weight_decay}]
    if vectors:
        groups.append({"params": vectors, "weight_decay": 0.0})
    return groups


# Settings that must match for a checkpoint to resume exactly.
_RESUME_KEYS = (
    "epochs",
    "max_steps",
    "stop_at_step",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_ratio",
    "grad_clip",
    "seed",
    "group_by_length",
    "mega_batch_mult",
)


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train: EncodedSplit,
        config: TrainerConfig,
        loss_fn: LossFn,
        params: Iterable[Any] | None = None,
        evaluate_fn: EvaluateFn | None = None,
        callbacks: Callbacks | None = None,
        hooks: TrainerHooks | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.config = config
        self.device = pick_device(None if device is None else str(device))
        self.model = model.to(self.device)
        self.train_split = train
        self.loss_fn = loss_fn
        self.evaluate_fn = evaluate_fn
        self._eval_reports = evaluate_fn is not None and (
            "progress" in inspect.signature(evaluate_fn).parameters
        )
        self.callbacks = callbacks or Callbacks()
        self.hooks = hooks or TrainerHooks()
        if params is None:
            params = [p for p in model.parameters() if p.requires_grad]
        self.groups = param_groups(params, config.weight_decay)
        self.trainable = [p for g in self.groups for p in g["params"]]
        if not self.trainable:
            raise ValueError("no trainable parameters")
        half = sorted({str(p.dtype) for p in self.trainable if p.dtype != torch.float32})
        if half:
            # AdamW keeps its moments in the parameters' dtype: bf16/fp16 masters lose the
            # small updates (and fp16 would need a loss scaler). Mixed precision is autocast.
            raise ValueError(
                f"trainable parameters must be float32 (master weights), got {', '.join(half)}: "
                "load the model with dtype=torch.float32"
            )
        in_model = {id(p) for p in model.parameters()}
        self.outside = [p for p in self.trainable if id(p) not in in_model]
        self.sampler = LengthGroupedSampler(
            train.lengths,
            config.batch_size,
            seed=config.seed,
            mega_batch_mult=config.mega_batch_mult,
            group_by_length=config.group_by_length,
        )
        self.pad_multiple = config.pad_to_multiple_of
        if self.pad_multiple is None and self.device.type == "cuda":
            self.pad_multiple = 8
        self.precision = resolve_precision(config.precision, self.device)

    @property
    def total_steps(self) -> int:
        return planned_steps(self.config.epochs, len(self.sampler), self.config.max_steps)

    @property
    def eval_every(self) -> int:
        return evaluation_interval(self.total_steps, self.config.eval_every)

    @property
    def end_step(self) -> int:
        """Where this run stops: the last step, or `stop_at_step` when it comes first."""
        stop = self.config.stop_at_step
        return self.total_steps if stop is None else min(stop, self.total_steps)

    def is_candidate(self, step: int) -> bool:
        """Selection only among late evaluations; the final one always counts."""
        first = (1.0 - self.config.select_last_fraction) * self.end_step
        return step >= first - 1e-9 or step == self.end_step

    def run(self, resume: bool = False) -> TrainResult:
        cfg, total = self.config, self.total_steps
        self.optimizer = torch.optim.AdamW(
            self.groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=self._can_fuse()
        )
        warmup = math.ceil(cfg.warmup_ratio * total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_warmup_decay(warmup, total)
        )
        self.step, self.epoch, self.batch_index = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.best_snapshot: Any = None
        self.examples_seen, self.train_seconds = 0, 0.0
        # training loss summed since the last evaluation (reported with it)
        self.loss_sum, self.loss_count = torch.zeros((), device=self.device), 0
        self._saved_step = -1
        self._best_saved_step: int | None = None  # the best file this run wrote or read
        checkpoint = None
        if resume and cfg.checkpoint_dir is not None:
            checkpoint = latest_checkpoint(Path(cfg.checkpoint_dir))
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            seed_everything(cfg.seed)

        numerics = apply_numerics(self.device, tf32=cfg.tf32, deterministic=cfg.deterministic)
        logger.info(
            "%s: precision %s on %s (%s%s)",
            cfg.stage,
            describe_precision(cfg.precision, self.device),
            self.device,
            numerics.why,
            ", deterministic" if numerics.deterministic else "",
        )
        self.model.train()
        batches = self.sampler.epoch(self.epoch)
        self._session_start, self._session_steps = time.perf_counter(), 0
        self._last_report: float | None = None
        end = self.end_step
        while self.step < end:
            if self.callbacks.should_stop():
                self._checkpoint()
                raise Cancelled(f"{cfg.stage}: stopped after step {self.step} of {total}")
            if self.batch_index == len(batches):
                self.epoch, self.batch_index = self.epoch + 1, 0
                batches = self.sampler.epoch(self.epoch)
            t0 = time.perf_counter()
            batch = collate(self.train_split, batches[self.batch_index], self.pad_multiple)
            try:
                loss = self._train_step(batch.to(self.device))
                self.batch_index += 1
                self.step += 1
                self.hooks.after_optimizer_step(self.step)
            except torch.OutOfMemoryError as exc:
                # A job error, not retried; the batch stays as the spec says (never halved).
                raise self._out_of_memory(batch, f"training step {self.step + 1}") from exc
            self.loss_sum += loss.detach().float()
            self.loss_count += 1
            self.examples_seen += len(batch)
            self.train_seconds += time.perf_counter() - t0
            self._session_steps += 1

            if self._progress_due() or self.step == end:
                self._check_finite()
                self._report_progress()
            if self.evaluate_fn is not None and (
                self.step % self.eval_every == 0 or self.step == end
            ):
                train_loss = self._check_finite()
                self.loss_sum.zero_()
                self.loss_count = 0
                self._evaluate(train_loss)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self._checkpoint()

        if self.evaluate_fn is None and self.best_step is None:
            self.best_step, self.best_snapshot = end, self._snapshot()
        self._checkpoint()
        return TrainResult(
            history=self.history,
            best_step=self.best_step if self.best_step is not None else end,
            best_metrics=self.best_metrics,
            best_snapshot=self.best_snapshot,
            total_steps=total,
            examples_per_s=self.examples_seen / max(self.train_seconds, 1e-9),
            train_seconds=self.train_seconds,
            precision=self.precision,
        )

    def _can_fuse(self) -> bool:
        """The fused AdamW kernel (4x faster than the per-tensor loop on a CPU, one kernel on
        a GPU) takes floating-point tensors on CPU or CUDA."""
        return all(
            p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in self.trainable
        )

    def _out_of_memory(self, batch: Batch, what: str) -> DeviceOutOfMemoryError:
        return out_of_memory(
            stage=self.config.stage,
            what=what,
            batch_size=len(batch),
            tokens=int(batch.inputs["input_ids"].shape[1]),
            device=self.device,
            lower="training.batch_size or training.max_length (precision bf16 also halves "
            "the activations on a GPU with native bf16)",
        )

    def _train_step(self, batch: Batch) -> torch.Tensor:
        with autocast(self.device, self.precision):
            logits = forward_logits(self.model, batch.inputs)
        loss = self.loss_fn(logits.float(), batch)  # the loss in fp32, outside autocast
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def _progress_due(self) -> bool:
        last = self._last_report
        return last is None or time.perf_counter() - last >= self.config.progress_every_s

    def _report_progress(self, eval_done: int = 0, eval_total: int = 0, eval_s: float = 0) -> None:
        """One progress callback; `eval_total` > 0: an evaluation is running (`eval_s` in)."""
        now = time.perf_counter()
        self._last_report = now
        end, steps = self.end_step, max(self._session_steps, 1)
        step_s = (now - self._session_start - eval_s) / steps
        eta = (end - self.step) * step_s
        if eval_total and eval_done:
            eta += (eval_total - eval_done) * eval_s / eval_done
        every = self.eval_every
        self.callbacks.on_progress(
            Progress(
                stage=self.config.stage,
                step=self.step,
                total_steps=end,
                examples_per_s=self.examples_seen / max(self.train_seconds, 1e-9),
                eta_s=max(eta, 0.0),
                detail=self.config.detail,
                phase="evaluate" if eval_total else "train",
                evaluations_done=len(self.history),
                evaluations_total=math.ceil(end / every) if self.evaluate_fn else 0,
                eval_examples_done=eval_done,
                eval_examples_total=eval_total,
            )
        )

    def _check_finite(self) -> float | None:
        """The mean training loss since the last evaluation; raises when it is not finite."""
        if self.loss_count == 0:
            return None
        value = self.loss_sum.item() / self.loss_count
        if not math.isfinite(value):
            raise FloatingPointError(f"{self.config.stage}: loss is {value} at step {self.step}")
        return value

    def _evaluate(self, train_loss: float | None) -> None:
        assert self.evaluate_fn is not None
        self.model.eval()
        try:
            info = self.hooks.before_evaluate(self.step) or {}
            if self._eval_reports:
                started = time.perf_counter()

                def progress(done: int, total: int) -> None:
                    if self._progress_due() or done == 0:
                        self._report_progress(done, total, time.perf_counter() - started)

                metrics = self.evaluate_fn(self.model, progress=progress)
            else:
                metrics = self.evaluate_fn(self.model)
        except DeviceOutOfMemoryError:
            raise  # evaluation's own (it halved its batch down to 1 first)
        except torch.OutOfMemoryError as exc:
            raise out_of_memory(
                stage=self.config.stage, what=f"the evaluation at step {self.step}",
                batch_size=None, tokens=None, device=self.device,
                lower="evaluation.batch_size, training.max_length or the number of masked "
                "matrices",
            ) from exc  # fmt: skip
        self.model.train()
        if "selection" not in metrics:
            raise KeyError("evaluate_fn must return a 'selection' metric (the ID metric)")
        entry = {"step": self.step, "metrics": metrics, "train_loss": train_loss, "info": info}
        self.history.append(entry)
        curve = self.config.curve or CurveId(stage=self.config.stage, seed=self.config.seed)
        self.callbacks.on_metrics(curve, self.step, evaluation_payload(entry))
        selectable = self.is_candidate(self.step) and info.get("selectable", True)
        # The final evaluation is a candidate whenever nothing else is: a run never ends
        # without a selected point.
        if self.step == self.end_step and self.best_step is None:
            selectable = True
        if selectable and (
            self.best_step is None or metrics["selection"] > self.best_metrics["selection"]
        ):
            self.best_step, self.best_metrics = self.step, metrics
            self.best_snapshot = self._snapshot()

    def _snapshot(self) -> Any:
        snapshot = self.hooks.snapshot()
        return state_dict_copy(self.model) if snapshot is None else snapshot

    # --- checkpoints ---------------------------------------------------------------------

    def _checkpoint(self) -> None:
        root = self.config.checkpoint_dir
        if root is None or self._saved_step == self.step:
            return
        model_state = {
            "model": self.model.state_dict(),
            "outside": [p.detach().cpu() for p in self.outside],
        }
        trainer_state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng_state(self.device),
            "history": self.history,
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "hooks": self.hooks.state_dict(),
            "examples_seen": self.examples_seen,
            "train_seconds": self.train_seconds,
            "loss_sum": self.loss_sum.item(),
            "loss_count": self.loss_count,
            "resume_keys": self._resume_keys(),
        }
        meta = {"step": self.step, "total_steps": self.total_steps, "config": asdict(self.config)}
        path = save_checkpoint(
            Path(root), self.step, model_state, trainer_state, meta,
            best_step=self.best_step, best_snapshot=self.best_snapshot,
            write_best=self.best_step != self._best_saved_step,
        )  # fmt: skip
        self._saved_step, self._best_saved_step = self.step, self.best_step
        self.callbacks.on_checkpoint(self.config.stage, self.step, path)

    def _resume_keys(self) -> dict[str, Any]:
        keys = {k: getattr(self.config, k) for k in _RESUME_KEYS}
        keys["train_examples"] = len(self.train_split)
        keys["precision"] = self.precision  # resolved: bf16 and fp32 runs do not mix
        return keys

    def _restore(self, path: Path) -> None:
        model_state, state, best = load_checkpoint(path)
        expected, found = self._resume_keys(), state["resume_keys"]
        changed = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
        if changed:
            raise ResumeMismatchError(f"cannot resume {path}: settings changed {changed}")
        self.model.load_state_dict(model_state["model"])
        with torch.no_grad():
            for p, saved in zip(self.outside, model_state["outside"], strict=True):
                p.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_index = state["batch_index"]
        self.history = state["history"]
        self.best_step, self.best_metrics = state["best_step"], state["best_metrics"]
        self.best_snapshot, self._best_saved_step = best, self.best_step
        self.hooks.load_state_dict(state["hooks"])
        self.examples_seen, self.train_seconds = state["examples_seen"], state["train_seconds"]
        self.loss_sum.fill_(state["loss_sum"])
        self.loss_count = state["loss_count"]
        self._saved_step = self.step
        restore_rng_state(state["rng"], self.device)

"""A tiny real job for worker and end-to-end tests: a random 2-layer BERT saved like a hub
checkpoint, the bundled MNLI/HANS samples cut to a few dozen rows, a handful of steps."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from persistence.db import Database
from persistence.keys import create_api_key
from persistence.repositories import JobRepository
from srcore.jobspec.spec import JobSpec
from tests.helpers.tiny_bert import WORDS
from tests.helpers.tiny_model_dir import save_tiny_model as save_model_dir

MNLI_LABELS = ("contradiction", "entailment", "neutral")


def save_tiny_model(folder: Path) -> Path:
    """The worker tests' model: the plain word list, the default dropout."""
    return save_model_dir(folder, words=WORDS, dropout=0.1)


def tiny_job_spec(
    model_dir: Path,
    *,
    search_steps: int = 8,
    eval_every: int = 2,
    dense_steps: int = 4,
    train_path: str | None = None,
    sparsities: tuple[float, ...] = (0.5,),
) -> dict[str, Any]:
    """The job spec as the API stores it (every default filled in)."""
    data: dict[str, Any] = {"max_train_examples": 64, "max_eval_examples": 64}
    if train_path is not None:
        data["train"] = {"format": "pair_json", "path": train_path}
    raw = {
        "name": "tiny",
        "task": "mnli",
        "model": {"name_or_path": str(model_dir)},
        "data": data,
        "debias": {"loss": "poe"},
        "pruning": {"method": "mask_training", "sparsities": list(sparsities)},
        "dense": {"max_steps": dense_steps},
        "training": {"max_steps": search_steps, "eval_every": eval_every, "batch_size": 16,
                     "max_length": 64, "learning_rate": 0.01},
        "evaluation": {"batch_size": 64},
    }  # fmt: skip
    return JobSpec.model_validate(raw).model_dump(mode="json")


def create_job(
    database: Database, spec: dict[str, Any], *, max_attempts: int = 3, queue: str = "gpu"
) -> uuid.UUID:
    """A queued job of a new owner, committed (not sent anywhere)."""
    with database.session() as session:
        owner = create_api_key(session, f"lab-{uuid.uuid4().hex[:8]}").owner
        job = JobRepository(session).create(
            owner_id=owner.id, spec=spec, spec_hash=uuid.uuid4().hex, queue=queue,
            max_attempts=max_attempts,
        )  # fmt: skip
        session.commit()
        return job.id


def extract_checkpoint(archive: Path, destination: Path) -> Path:
    """Unpack a checkpoint archive (one top-level folder) safely; answers that folder."""
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    (folder,) = [p for p in destination.iterdir() if p.is_dir()]
    return folder


def pruned_weights(model_dir: Path) -> tuple[int, int, dict[str, str]]:
    """(zeros, weights) over the prunable matrices of the checkpoint loaded with plain
    transformers, and its id2label."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from srcore.pruning import prunable_weights

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    params = dict(model.named_parameters())
    zeros = total = 0
    for name in prunable_weights(model, include_classifier=True):
        zeros += int(torch.count_nonzero(params[name] == 0))
        total += params[name].numel()
    return zeros, total, {str(k): v for k, v in model.config.id2label.items()}

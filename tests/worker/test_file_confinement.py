"""Files inside an allowed folder are confined too (issue 19 item 14): the worker checks the
files it opened, not a path it checked earlier. A model folder under a data root whose files
are symlinks elsewhere, or which is changed after the job was checked, is not loaded; a data
file that leads out is not read. And a job error never shows where srnet is installed (item 15).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import srcore
from persistence.repositories import JobRepository
from persistence.tables import JobStatus
from srcore.data.errors import DataFormatError
from srcore.data.loaders import load_split
from srcore.files import OutsideRootsError, confined_to, open_confined, without_install_paths
from srcore.jobspec.spec import JobSpec, SourceSpec
from srcore.jobspec.spec_paths import path_problems
from srcore.models import ModelNotFoundError, resolve_model_path
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.tasks import Outcome, execute_job


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside every data root of these tests (pytest's temp root is the root)."""
    folder = Path(tempfile.mkdtemp(prefix="srnet-outside-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def model_copy(tiny_model_dir: Path, where: Path) -> Path:
    shutil.copytree(tiny_model_dir, where)
    return where


def test_a_model_folder_whose_weights_lead_outside_is_not_loaded(
    worker_context, tiny_model_dir, tmp_path, outside
):
    model = model_copy(tiny_model_dir, tmp_path / "model")
    weights = model / "model.safetensors"
    shutil.move(weights, outside / "model.safetensors")
    weights.symlink_to(outside / "model.safetensors")
    # The spec's own path is inside the roots: the API and the claim-time check accept it.
    spec = JobSpec.model_validate(tiny_job_spec(model))
    assert path_problems(spec, worker_context.settings.data_roots) == []

    job_id = create_job(worker_context.database, tiny_job_spec(model))
    assert execute_job(job_id, worker_context) is Outcome.failed
    with worker_context.database.session() as session:
        job = JobRepository(session).get(job_id)
    assert job.job_status is JobStatus.failed and job.attempt == 1  # an input error: no retry
    assert "model.name_or_path: not loaded" in job.error
    assert "model.safetensors: resolves outside SRNET_DATA_ROOTS" in job.error
    assert str(outside) not in job.error  # where the link led is not told


def test_a_model_folder_changed_after_the_check_is_refused_when_opened(
    tiny_model_dir, tmp_path, outside
):
    model = model_copy(tiny_model_dir, tmp_path / "model")
    spec = JobSpec.model_validate(tiny_job_spec(model))
    assert path_problems(spec, [str(tmp_path)]) == []  # checked: fine
    # …then swapped: the config now leads outside the roots.
    shutil.copy(model / "config.json", outside / "config.json")
    (model / "config.json").unlink()
    (model / "config.json").symlink_to(outside / "config.json")
    with (
        confined_to([tmp_path], tmp_path / "staging"),
        pytest.raises(ModelNotFoundError, match=r"config\.json: resolves outside SRNET_DATA_ROOTS"),
    ):
        resolve_model_path(str(model))
    assert resolve_model_path(str(model)) == str(model)  # no confinement: a laptop run


def test_a_confined_model_loads_from_a_checked_private_copy(tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    model = model_copy(tiny_model_dir, tmp_path / "data" / "model")
    shared = tmp_path / "data" / "shared-tokenizer.json"
    shutil.move(model / "tokenizer.json", shared)
    (model / "tokenizer.json").symlink_to(shared)  # a link that stays inside: fine
    staging = tmp_path / "staging"
    with confined_to([tmp_path / "data"], staging):
        loaded = Path(resolve_model_path(str(model)))
        assert loaded.parent == staging and not (loaded / "tokenizer.json").is_symlink()
        assert (loaded / "tokenizer.json").read_bytes() == shared.read_bytes()
        assert AutoConfig.from_pretrained(loaded).num_labels == 3
    assert not staging.exists()  # the copy goes with the confinement


def test_a_data_file_that_leads_outside_is_not_read(tmp_path, outside):
    (outside / "train.jsonl").write_text('{"premise": "a", "hypothesis": "b", "label": 1}\n')
    link = tmp_path / "train.jsonl"
    link.symlink_to(outside / "train.jsonl")
    source = SourceSpec(format="pair_json", path=str(link))
    labels = ("contradiction", "entailment", "neutral")
    with (
        confined_to([tmp_path], tmp_path / "staging"),
        pytest.raises(DataFormatError, match="not read: resolves outside SRNET_DATA_ROOTS"),
    ):
        load_split(source, labels, "train")
    # The bundled samples are always readable, whatever the roots.
    with confined_to([tmp_path], tmp_path / "staging"):
        sample = load_split(SourceSpec(format="pair_json", path="sample:mnli/train.json"),
                            labels, "train", max_examples=4)  # fmt: skip
    assert len(sample.examples) == 4


def test_open_confined_refuses_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "fifo").mkdir()
    with confined_to([tmp_path], tmp_path / "staging"):
        with pytest.raises(IsADirectoryError):
            open_confined(tmp_path / "fifo")
        with pytest.raises(OutsideRootsError, match="resolves outside"):
            open_confined("/etc/hostname" if Path("/etc/hostname").exists() else "/etc/passwd")


def test_a_job_error_does_not_show_the_install_path(worker_context, tiny_model_dir):
    install = str(Path(srcore.__file__).resolve().parents[1])
    job_id = create_job(
        worker_context.database, tiny_job_spec(tiny_model_dir, train_path="sample:mnli/nope.json")
    )
    assert execute_job(job_id, worker_context) is Outcome.failed
    with worker_context.database.session() as session:
        error = JobRepository(session).get(job_id).error
    assert "no such bundled sample file" in error and "sample:mnli/nope.json" in error
    assert install not in error
    assert without_install_paths(f"x {install}/srcore/y.py") == "x <srnet>/srcore/y.py"

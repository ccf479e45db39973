"""Which worker process gets which GPU (`worker.gpus`), on CPU: the probes read fake hardware
(a CUDA_VISIBLE_DEVICES value, a stand-in pynvml module, an `nvidia-smi` script on the PATH),
the assignment is a plain function over the inventory they return."""

from __future__ import annotations

import os
import stat
import sys
import time
import types
from pathlib import Path

import pytest
from pydantic import ValidationError

from persistence.settings import WorkerSettings
from srnet.cli import main
from worker.gpus import (
    GpuAssignmentError,
    GpuInventory,
    VisibleGpu,
    check_unpinned_concurrency,
    job_device_environment,
    parse_cuda_visible_devices,
    parse_nvidia_smi_list,
    plan_worker_children,
    probe_gpus,
)
from worker.supervisor import child_argv, child_environment

SMI_OUTPUT = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-4a3b2c1d-0000-1111-2222-333344445555)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff)
  MIG 3g.40gb     Device  0: (UUID: MIG-11112222-3333-4444-5555-666677778888)
GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-0badc0de-1234-5678-9abc-def012345678)
"""
FOUR = GpuInventory(
    tuple(VisibleGpu(str(i), f"GPU-{i}{i}{i}", "NVIDIA H100") for i in range(4)), "nvml"
)


def test_cuda_visible_devices_is_read_as_cuda_reads_it():
    assert parse_cuda_visible_devices("0,1") == ("0", "1")
    assert parse_cuda_visible_devices(" 2 , 3 ") == ("2", "3")
    assert parse_cuda_visible_devices("") == ()
    assert parse_cuda_visible_devices("-1") == ()  # the usual way to hide every GPU
    assert parse_cuda_visible_devices("1,-1,2") == ("1",)  # a negative index ends the list
    assert parse_cuda_visible_devices("GPU-aa,GPU-bb") == ("GPU-aa", "GPU-bb")
    with pytest.raises(GpuAssignmentError, match="names 0 twice"):
        parse_cuda_visible_devices("0,0")
    with pytest.raises(GpuAssignmentError, match=r"CUDA_VISIBLE_DEVICES='0,gpu1'.*'gpu1'"):
        parse_cuda_visible_devices("0,gpu1")


def test_nvidia_smi_lines_give_index_uuid_and_name_and_skip_mig_lines():
    gpus = parse_nvidia_smi_list(SMI_OUTPUT)
    assert [g.id for g in gpus] == ["0", "1", "2"]
    assert gpus[1].uuid == "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff"
    assert gpus[2].name == "NVIDIA A100-SXM4-40GB"
    assert gpus[0].pin == gpus[0].uuid  # children are pinned by UUID, whatever the order
    assert parse_nvidia_smi_list("No devices were found\n") == ()


@pytest.fixture
def no_probes(monkeypatch, tmp_path):
    """No pynvml, an empty PATH (no nvidia-smi), no CUDA_VISIBLE_DEVICES."""
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tmp_path


def fake_nvidia_smi(folder: Path, output: str, code: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n/bin/cat <<'EOF'\n{output}EOF\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_probe_order_cuda_visible_devices_then_nvml_then_nvidia_smi(no_probes, monkeypatch):
    assert probe_gpus() == GpuInventory((), "none")

    fake_nvidia_smi(no_probes / "empty-path", SMI_OUTPUT)
    smi = probe_gpus()
    assert smi.source == "nvidia-smi" and [g.id for g in smi.gpus] == ["0", "1", "2"]

    class NVMLError(Exception):
        pass

    nvml = types.SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: f"GPU-nvml-{h}".encode(),  # older pynvml: bytes
        nvmlDeviceGetName=lambda h: "NVIDIA L4",
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert probe_gpus() == GpuInventory(
        (VisibleGpu("0", "GPU-nvml-0", "NVIDIA L4"), VisibleGpu("1", "GPU-nvml-1", "NVIDIA L4")),
        "nvml",
    )

    # The admin's restriction of this process wins over what the host has.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-xyz")
    assert probe_gpus() == GpuInventory(
        (VisibleGpu("1"), VisibleGpu("GPU-xyz", "GPU-xyz")), "CUDA_VISIBLE_DEVICES"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probe_gpus().gpus == ()


def test_an_nvidia_smi_that_fails_is_an_error_not_a_cpu_host(no_probes):
    fake_nvidia_smi(no_probes / "empty-path", "NVIDIA-SMI has failed\n", code=9)
    with pytest.raises(GpuAssignmentError, match=r"nvidia-smi -L failed \(9\)"):
        probe_gpus()


def test_one_pinned_gpu_process_per_gpu_and_a_cpu_only_one_for_the_cpu_queue():
    children = plan_worker_children(FOUR, ("all",), ("gpu", "cpu"))
    assert [(c.name, c.queues, c.cuda_visible_devices) for c in children] == [
        ("gpu0", ("gpu",), "GPU-000"),
        ("gpu1", ("gpu",), "GPU-111"),
        ("gpu2", ("gpu",), "GPU-222"),
        ("gpu3", ("gpu",), "GPU-333"),
        ("cpu", ("cpu",), ""),
    ]
    assert all(c.concurrency == 1 for c in children)

    some = plan_worker_children(FOUR, ("3", "GPU-111"), ("gpu",), concurrency=2)
    assert [(c.name, c.cuda_visible_devices) for c in some] == [
        ("gpu3", "GPU-333"),
        ("gpu1", "GPU-111"),
    ]
    # CUDA_VISIBLE_DEVICES entries without a UUID are handed on as written.
    restricted = GpuInventory((VisibleGpu("2"), VisibleGpu("3")), "CUDA_VISIBLE_DEVICES")
    assert [c.cuda_visible_devices for c in plan_worker_children(restricted, ("3",), ("gpu",))] == [
        "3"
    ]


@pytest.mark.parametrize(
    ("request_", "queues", "concurrency", "message"),
    [
        (("7",), ("gpu",), None, r"GPU 7 is not visible; this host has 0 NVIDIA H100 \(GPU-000\)"),
        (("1", "GPU-111"), ("gpu",), None, "names GPU 1 twice"),
        (("0", "1"), ("gpu",), 3, "concurrency 3 is more than the 2 GPU"),
        (("all",), ("gpu",), 5, "jobs would share a GPU"),
        (("0", "1"), ("gpu",), 1, "concurrency 1 is fewer than the 2 GPU"),
        (("0",), ("cpu",), None, "consumes only cpu"),
    ],
)
def test_requests_the_host_cannot_honour_are_refused(request_, queues, concurrency, message):
    with pytest.raises(GpuAssignmentError, match=message):
        plan_worker_children(FOUR, request_, queues, concurrency)


def test_all_on_a_host_without_gpus_is_refused():
    with pytest.raises(GpuAssignmentError, match=r"--gpus all: no GPU visible .*from none"):
        plan_worker_children(GpuInventory((), "none"), ("all",), ("gpu", "cpu"))


def test_a_worker_without_gpus_runs_one_job_at_a_time_on_a_gpu_host():
    with pytest.raises(GpuAssignmentError, match=r"--gpus all \(or --gpus 0,1,2,3"):
        check_unpinned_concurrency(FOUR, ("gpu", "cpu"), 2)
    check_unpinned_concurrency(FOUR, ("gpu",), 1)
    check_unpinned_concurrency(FOUR, ("cpu",), 4)  # cpu-queue jobs never use a GPU
    check_unpinned_concurrency(GpuInventory((), "none"), ("gpu",), 4)  # a CPU-only host


def test_the_gpus_setting_is_validated_naming_the_variable(monkeypatch):
    assert WorkerSettings(_env_file=None, SRNET_WORKER_GPUS=" 0, 2 ").gpus == ("0", "2")
    assert WorkerSettings(_env_file=None, SRNET_WORKER_GPUS="ALL").gpus == ("all",)
    assert WorkerSettings(_env_file=None).gpus is None
    for bad, message in [("0,0", "names GPU 0 twice"), ("all,1", "cannot be mixed"),
                         ("0,,1", "'all' or GPU ids")]:  # fmt: skip
        with pytest.raises(ValidationError, match=message) as caught:
            WorkerSettings(_env_file=None, SRNET_WORKER_GPUS=bad)
        assert "SRNET_WORKER_GPUS" in str(caught.value)


def test_a_child_s_environment_pins_it_and_does_not_make_it_a_supervisor():
    (gpu_child, cpu_child) = plan_worker_children(FOUR, ("2",), ("gpu", "cpu"))
    parent = {"SRNET_WORKER_GPUS": "2", "SRNET_WORKER_QUEUES": "gpu,cpu", "PATH": "/usr/bin"}
    env = child_environment(gpu_child, parent)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-222" and env["SRNET_WORKER_QUEUES"] == "gpu"
    assert env["SRNET_WORKER_CONCURRENCY"] == "1" and "SRNET_WORKER_GPUS" not in env
    assert env["PATH"] == "/usr/bin"
    assert child_environment(cpu_child, parent)["CUDA_VISIBLE_DEVICES"] == ""
    argv = child_argv(gpu_child, hostname="box1")
    assert argv[1:4] == ["-m", "srnet", "worker"] and "--gpus" not in argv
    assert argv[argv.index("--hostname") + 1] == "gpu2@box1"


def test_a_cpu_queue_job_sees_no_gpu_and_the_environment_is_restored(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-000")
    with job_device_environment("cpu"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-000"
    with job_device_environment("gpu"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-000"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with job_device_environment("cpu"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpus", "0,0"], "names GPU 0 twice"),
        (["--gpus", "5"], "GPU 5 is not visible; this host has 0, 1 (from CUDA_VISIBLE_DEVICES)"),
        (["--gpus", "all", "--concurrency", "3"], "concurrency 3 is more than the 2 GPU"),
        (["--gpus", "all", "--queues", "cpu"], "consumes only cpu"),
    ],
)
def test_srnet_worker_refuses_a_bad_gpu_request_before_starting_anything(
    monkeypatch, tmp_path, capsys, argv, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("SRNET_HOME", str(tmp_path / "home"))
    assert main(["worker", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing was started, nothing written


def test_the_supervisor_waits_for_children_that_end_normally_and_each_sees_its_pin(tmp_path):
    """Real child processes (small Python programs in place of `srnet worker`): each writes
    the CUDA_VISIBLE_DEVICES it started with; children that exit 0 (a Slurm worker's idle
    exit) end the supervisor with 0 once the last one is done; a failing one stops the rest."""
    from worker.supervisor import WorkerSupervisor

    children = plan_worker_children(FOUR, ("1", "3"), ("gpu", "cpu"))
    program = (
        "import os, sys, time, pathlib; "
        "pathlib.Path(sys.argv[1]).write_text(os.environ['CUDA_VISIBLE_DEVICES']); "
        "time.sleep(float(sys.argv[2])); sys.exit(int(sys.argv[3]))"
    )

    def argv_of(delays: dict[str, tuple[float, int]]):
        def argv(child):
            delay, code = delays[child.name]
            return [sys.executable, "-c", program, str(tmp_path / child.name), str(delay),
                    str(code)]  # fmt: skip

        return argv

    normal = WorkerSupervisor(children, argv_of=argv_of(
        {"gpu1": (0.1, 0), "gpu3": (1.0, 0), "cpu": (0.5, 0)}), poll_s=0.05)  # fmt: skip
    assert normal.run() == 0
    assert all(not r.alive() for r in normal.running)
    seen = {c.name: (tmp_path / c.name).read_text() for c in children}
    assert seen == {"gpu1": "GPU-111", "gpu3": "GPU-333", "cpu": ""}

    failing = WorkerSupervisor(children, argv_of=argv_of(
        {"gpu1": (0.2, 3), "gpu3": (60.0, 0), "cpu": (60.0, 0)}), poll_s=0.05)  # fmt: skip
    started = time.monotonic()
    assert failing.run() == 3
    assert time.monotonic() - started < 30  # the sleeping ones were stopped, not waited for
    assert all(not r.alive() for r in failing.running)

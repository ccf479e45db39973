"""Precision, TF32, determinism, device records and CPU-thread choices of
srcore.training.device. GPU probes are faked where a test needs a GPU (none here)."""

import json
import os
import sys

import pytest
import torch

from srcore.training import device as dev

XEON_AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512vl\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\n"


@pytest.mark.parametrize(("cpuinfo", "native"), [(XEON_AMX, True), (ZEN4, True), (SKYLAKE, False)])
def test_native_bf16_comes_from_the_cpu_flags(cpuinfo, native):
    assert dev.cpu_has_native_bf16(cpuinfo) is native


def test_without_x86_flags_torch_capability_decides(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert dev.cpu_has_native_bf16(ARM) is False
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AMX")
    assert dev.cpu_has_native_bf16("") is True


@pytest.mark.parametrize(("native", "chosen"), [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_cpu(monkeypatch, native, chosen):
    monkeypatch.setattr(dev, "_host_cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert dev.resolve_precision("auto", cpu) == chosen
    assert dev.resolve_precision("fp32", cpu) == "fp32"  # the spec wins
    assert dev.resolve_precision("bf16", cpu) == "bf16"
    info = dev.precision_info("auto", cpu)
    assert info["asked"] == "auto" and info["used"] == chosen and info["why"].startswith(chosen)


@pytest.mark.parametrize(
    ("capability", "chosen"),
    [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 0), "fp32"), ((7, 5), "fp32")],
)
def test_auto_on_cuda_needs_compute_capability_8(monkeypatch, capability, chosen):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert dev.resolve_precision("auto", torch.device("cuda")) == chosen


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        dev.resolve_precision("fp16", torch.device("cpu"))


def test_autocast_runs_matmuls_in_bf16_only_when_resolved_so():
    a = torch.randn(4, 4)
    with dev.autocast(torch.device("cpu"), "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with dev.autocast(torch.device("cpu"), "fp32"):
        assert (a @ a).dtype == torch.float32


@pytest.fixture
def threads(monkeypatch):
    """Restore torch's thread count; no thread variable set unless a test sets one."""
    before = torch.get_num_threads()
    for name in dev.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dev, "_TORCH_THREADS_AT_IMPORT", 4)
    monkeypatch.setattr(dev, "_threads_we_set", None)
    monkeypatch.setattr(dev, "_usable_cores", lambda: 2)
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def test_default_is_torchs_count_lowered_to_the_usable_cores(threads):
    assert dev.configure_cpu_threads() == 2
    assert torch.get_num_threads() == 2
    assert dev.configure_cpu_threads() == 2  # again: still ours, still the default


def test_an_explicit_count_wins(threads):
    assert dev.configure_cpu_threads(3) == 3 and torch.get_num_threads() == 3


def test_omp_num_threads_is_honoured(threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)  # what torch does at start-up with the variable set
    assert dev.configure_cpu_threads() == 3 and torch.get_num_threads() == 3


def test_a_callers_set_num_threads_is_honoured(threads):
    torch.set_num_threads(1)
    assert dev.configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    dev.configure_cpu_threads(2)  # our own setting is not mistaken for a caller's
    assert dev.configure_cpu_threads() == 2


# --- bf16 on old GPUs, TF32, deterministic algorithms -----------------------------------------


def fake_gpu(monkeypatch, capability, name="Tesla V100-SXM2-16GB"):
    """A visible GPU of `capability` for the probes precision and TF32 decisions read."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


def test_explicit_bf16_is_refused_below_compute_capability_8(monkeypatch):
    fake_gpu(monkeypatch, (7, 0))
    with pytest.raises(dev.DeviceSettingError, match=r"training.precision: bf16 needs .* 7\.0"):
        dev.resolve_precision("bf16", torch.device("cuda"))
    assert dev.resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert dev.resolve_precision("auto", torch.device("cuda")) == "fp32"
    fake_gpu(monkeypatch, (8, 6), "NVIDIA A10")
    assert dev.resolve_precision("bf16", torch.device("cuda")) == "bf16"


@pytest.mark.parametrize(
    ("device_type", "capability", "asked", "allowed"),
    [
        ("cuda", (8, 0), True, True),
        ("cuda", (9, 0), True, True),
        ("cuda", (9, 0), False, False),  # training.tf32: false
        ("cuda", (7, 5), True, False),  # no TF32 tensor cores
        ("cpu", None, True, False),
    ],
)
def test_tf32_where_asked_and_the_gpu_has_it(device_type, capability, asked, allowed):
    plan = dev.plan_numerics(device_type, capability, tf32=asked, deterministic=False)
    assert plan.tf32 is allowed and plan.deterministic is False and plan.why


@pytest.fixture
def numerics():
    """Restore torch's process-wide switches after a test sets them."""
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.use_deterministic_algorithms(saved[2])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3:]


def test_apply_numerics_sets_torchs_switches(monkeypatch, numerics):
    fake_gpu(monkeypatch, (9, 0), "NVIDIA H100 80GB HBM3")
    torch.backends.cudnn.benchmark = True
    plan = dev.apply_numerics(torch.device("cuda"), tf32=True, deterministic=True)
    assert plan.tf32 and plan.deterministic
    assert torch.backends.cuda.matmul.allow_tf32 is True
    assert torch.backends.cudnn.allow_tf32 is True
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False

    dev.apply_numerics(torch.device("cuda"), tf32=False, deterministic=False)
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert not torch.are_deterministic_algorithms_enabled()
    dev.apply_numerics(torch.device("cpu"), tf32=True, deterministic=False)
    assert torch.backends.cuda.matmul.allow_tf32 is False  # nothing to allow on a CPU


def test_cublas_workspace_is_set_before_cuda_is_touched():
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in dev.DETERMINISTIC_WORKSPACES


def test_deterministic_refuses_a_cublas_workspace_that_is_not(monkeypatch, numerics):
    fake_gpu(monkeypatch, (8, 0), "NVIDIA A100")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    with pytest.raises(dev.DeviceSettingError, match=r"training\.deterministic: CUBLAS_WORKSPACE"):
        dev.apply_numerics(torch.device("cuda"), tf32=True, deterministic=True)
    dev.apply_numerics(torch.device("cuda"), tf32=True, deterministic=False)  # needs none


def test_precision_block_reports_tf32_and_determinism(monkeypatch):
    fake_gpu(monkeypatch, (8, 0), "NVIDIA A100-SXM4-80GB")
    info = dev.precision_info("fp32", torch.device("cuda"), tf32=True, deterministic=True)
    assert info["used"] == "fp32" and info["tf32"] is True and info["tf32_asked"] is True
    assert info["deterministic"] is True
    cpu = dev.precision_info("fp32", torch.device("cpu"))
    assert cpu["tf32"] is False and cpu["tf32_asked"] is True and cpu["deterministic"] is False


# --- describe_device ---------------------------------------------------------------------------


class H100Props:
    name = "NVIDIA H100 80GB HBM3"
    uuid = "2f1b6c3e-8d9a-4e55-b0a1-0c9d8e7f6a5b"
    total_memory = 85_045_100_544
    major, minor = 9, 0
    multi_processor_count = 132


def test_cuda_description_has_what_a_lab_needs(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    d = dev.cuda_description(H100Props(), "12.8", "570.124.06", "nvml", torch.device("cuda"))
    assert d == {
        "type": "cuda",
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-2f1b6c3e-8d9a-4e55-b0a1-0c9d8e7f6a5b",
        "total_memory_bytes": 85_045_100_544,
        "total_memory_gib": 79.2,
        "compute_capability": "9.0",
        "multiprocessors": 132,
        "cuda_runtime": "12.8",
        "driver": "570.124.06",
        "driver_source": "nvml",
        "cuda_visible_devices": "3",
    }
    json.dumps(d)


def test_describe_device_on_cuda_reads_torchs_properties(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: H100Props())
    monkeypatch.setattr(dev, "cuda_driver_version", lambda: (None, "pynvml not installed"))
    d = dev.describe_device(torch.device("cuda:0"))
    assert d["uuid"].startswith("GPU-") and d["compute_capability"] == "9.0"
    assert d["driver"] is None and d["driver_source"] == "pynvml not installed"


def test_driver_version_from_proc_without_nvml(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: not installed
    proc = tmp_path / "version"
    proc.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version:  gcc version 12.2.0\n"
    )
    assert dev.cuda_driver_version(proc) == ("550.54.15", str(proc))
    version, why = dev.cuda_driver_version(tmp_path / "missing")
    assert version is None and "pynvml not installed" in why and "not readable" in why


def test_describe_device_on_the_cpu():
    d = dev.cpu_description(
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n" + ZEN4.split("\n")[1],
        threads=1,
        usable_cores=2,
    )
    assert d["type"] == "cpu" and d["name"] == "AMD EPYC 9R14 96-Core Processor"
    assert d["threads"] == 1 and d["usable_cores"] == 2
    assert d["bf16_flags"] == ["avx512_bf16"] and d["native_bf16"] is True
    here = dev.describe_device(torch.device("cpu"))
    assert here["type"] == "cpu" and here["threads"] == torch.get_num_threads()
    json.dumps(here)

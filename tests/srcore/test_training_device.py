"""Precision and CPU-thread choices of srcore.training.device."""

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

"""Dockerfile and docker-compose.yml, checked without a Docker engine: the services the design
asks for, health checks, migrations first, Redis without persistence, a GPU reservation, the
commands the image really has, an environment the service's settings accept in production,
and the torch pin of the image equal to the project's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from persistence.settings import Settings
from srnet.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
GPU_WORKERS = ("worker-gpu0", "worker-gpu1", "worker-gpu2", "worker-gpu3")
SRNET_SERVICES = ("migrate", "api", *GPU_WORKERS, "worker-cpu", "reconciler")
SRNET_COMMANDS = ("migrate", *GPU_WORKERS, "worker-cpu", "reconciler")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def substituted(value: str) -> str:
    """${VAR:?msg} / ${VAR:-default} as compose would fill them for a real deployment."""
    secrets = {"POSTGRES_PASSWORD": "pg-secret", "SRNET_BOOTSTRAP_API_KEY": "k" * 43}

    def fill(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        return secrets.get(name, rest if op == ":-" else "x")

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", fill, value)


def test_the_services_of_the_design_are_there(compose):
    services = compose["services"]
    assert {"postgres", "redis", *SRNET_SERVICES} <= set(services)
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") or (name == "migrate" and check.get("disable")), name
    redis = services["redis"]["command"]
    assert redis[redis.index("--save") + 1] == "" and "--appendonly" in redis
    assert redis[redis.index("--appendonly") + 1] == "no"


def test_migrations_run_before_the_service_starts(compose):
    services = compose["services"]
    assert services["migrate"]["command"][:2] == ["srnet", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", *GPU_WORKERS, "worker-cpu", "reconciler"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_one_worker_service_per_gpu_each_with_its_own_device(compose):
    """`count: N` (or `--scale`) gives every replica devices 0..N-1: all on GPU 0. Each GPU
    worker service reserves one GPU by id, runs one job at a time, and has time to checkpoint."""
    services = compose["services"]
    seen_ids, hostnames = [], []
    for name in GPU_WORKERS:
        worker = services[name]
        (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        assert "count" not in device and len(device["device_ids"]) == 1, name
        seen_ids.append(device["device_ids"][0])
        command = worker["command"]
        assert command[command.index("--queues") + 1] == "gpu", name
        assert "--concurrency" not in command and "--gpus" not in command, name
        hostname = command[command.index("--hostname") + 1]
        hostnames.append(hostname)
        assert f"-d {hostname.replace('%h', '$$HOSTNAME')} " in worker["healthcheck"]["test"][1]
        assert worker["stop_grace_period"], name
    assert seen_ids == ["0", "1", "2", "3"] and len(set(hostnames)) == len(hostnames)
    # GPU 0 by default; the others only where the host has them.
    assert "profiles" not in services["worker-gpu0"]
    assert services["worker-gpu1"]["profiles"] == ["gpus-2", "gpus-4"]
    assert services["worker-gpu3"]["profiles"] == ["gpus-4"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert "deploy" not in services["worker-cpu"]  # no GPU: cpu-queue jobs run on the CPU


def test_srnet_commands_exist_and_parse(compose):
    parser = build_parser()
    for name in SRNET_COMMANDS:
        command = compose["services"][name]["command"]
        assert command[0] == "srnet", name
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown option
    api = compose["services"]["api"]["command"]
    factory = api[api.index("--factory") + 1]
    assert factory == "api.main:create_app"


def test_the_environment_is_one_the_settings_accept_in_production(compose, monkeypatch):
    env = {k: substituted(str(v)) for k, v in compose["x-srnet-environment"].items()}
    for name in SRNET_SERVICES:
        assert compose["services"][name]["environment"] == compose["x-srnet-environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # production refuses unsafe values
    assert settings.environment == "production"
    assert settings.database_url.startswith("postgresql+psycopg://srnet:pg-secret@postgres")
    assert settings.broker_is_redis and settings.data_roots == ["/data"]
    # Artifacts and work folders live on the volume every service mounts.
    for name in ("api", *GPU_WORKERS, "reconciler"):
        assert "srnet-data:/var/lib/srnet" in compose["services"][name]["volumes"]
    assert env["SRNET_ARTIFACT_STORE"].startswith("file:///var/lib/srnet/")
    assert env["SRNET_WORK_DIR"].startswith("/var/lib/srnet/")
    assert int(env["SRNET_BROKER_VISIBILITY_TIMEOUT_S"]) >= 24 * 3600


def test_the_image_pins_the_project_s_torch_from_the_variant_index(dockerfile):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch==")]
    assert f"ARG TORCH_VERSION={pin.removeprefix('torch==')}" in dockerfile
    assert "ARG TORCH_VARIANT=cpu" in dockerfile
    order = [dockerfile.index(step) for step in (
        "download.pytorch.org/whl/${TORCH_VARIANT}", "pip install -r", "pip install --no-deps ."
    )]  # fmt: skip
    assert order == sorted(order)  # torch first: the pin is met before pip looks at PyPI


def test_the_image_runs_as_a_user_with_its_packages_and_a_health_check(dockerfile):
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD curl -fsS http://127.0.0.1:8000/healthz",
                     dockerfile, re.M)  # fmt: skip
    assert 'ENTRYPOINT ["tini", "--"]' in dockerfile
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, package
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "var" in ignored

"""The image's Python steps, run here as the Dockerfile writes them (no container engine runs on
the development machines): the build context its COPY lines name, minus .dockerignore, built
into a wheel by `pip install --no-deps .`'s backend, installed on its own, then the Dockerfile's
import check, the `srnet` entry point, `srnet migrate` on a fresh database and the commands
docker-compose.yml runs, all from the installed wheel (not from this checkout)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def copied_paths(dockerfile: str) -> list[str]:
    """The sources of every `COPY src... dest` (not `--from` stages)."""
    paths: list[str] = []
    for line in dockerfile.splitlines():
        match = re.match(r"^COPY\s+(?!--from)(.+)$", line.strip())
        if match:
            *sources, _dest = match.group(1).split()
            paths += sources
    return paths


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the image builds, installed into a folder of its own."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    patterns = [p for p in (ROOT / ".dockerignore").read_text().split() if not p.startswith("#")]
    context = tmp_path_factory.mktemp("context")
    for source in copied_paths(dockerfile):
        src = ROOT / source
        assert src.exists(), f"the Dockerfile copies {source}, which does not exist"
        if src.is_file():
            shutil.copy2(src, context / source)
            continue
        for path in src.rglob("*"):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(relative, patterns):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, context / relative)
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", ".", "-w", str(wheels)], cwd=context, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = wheels.glob("srnet-*.whl")
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every file the packages read at run time is in the wheel: bundled samples, the web
    # pages' static files, the migrations (all but the packages' READMEs).
    tracked = subprocess.run(["git", "ls-files", *copied_paths(dockerfile)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    needed = [p for p in tracked if "/" in p and not p.endswith("README.md")]
    assert needed and not [p for p in needed if p not in names]
    return target


def in_image(target: Path, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run with the installed wheel first on the path, from a folder outside the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    env.update({"PYTHONPATH": str(target), "SRNET_HOME": str(tmp_path / "home"),
                "PYTHONDONTWRITEBYTECODE": "1"})  # fmt: skip
    return subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_the_image_s_import_check_passes_from_the_installed_wheel(installed, tmp_path):
    dockerfile = (ROOT / "Dockerfile").read_text()
    (check,) = re.findall(r'python -c "(import api\.main[^"]*)"', dockerfile)
    where = "print(api.__file__, worker.__file__, srcore.__file__, srnet.__file__)"
    done = in_image(installed, tmp_path, "-c",
                    f"{check}; import api, worker, srcore, srnet; {where}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(path.startswith(str(installed)) for path in done.stdout.split())


def test_the_entry_point_and_the_compose_commands_from_the_wheel(installed, tmp_path):
    (entry,) = installed.glob("srnet-*.dist-info/entry_points.txt")
    assert "srnet = srnet.cli:main" in entry.read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:1] == ["srnet"]:
            done = in_image(installed, tmp_path, "-m", "srnet", *command[1:2], "--help")
            assert done.returncode == 0, (name, done.stderr)
    slurm = in_image(installed, tmp_path, "-m", "srnet", "slurm", "workers", "--print")
    assert slurm.returncode == 0 and "exec " in slurm.stdout, slurm.stderr


def test_srnet_migrate_from_the_wheel_creates_the_schema(installed, tmp_path):
    done = in_image(installed, tmp_path, "-m", "srnet", "migrate", "--wait", "5")
    assert done.returncode == 0, done.stderr
    assert "database schema is up to date" in done.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "home" / "srnet.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"jobs", "alembic_version"} <= tables

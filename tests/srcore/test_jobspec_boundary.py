"""`srcore.jobspec` is the torch-free part of srcore, and the only part the API and the
persistence layer import: "the API imports only the spec" is a rule about a path."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import srcore.jobspec

ROOT = Path(__file__).resolve().parents[2]


def srcore_imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module == "srcore":  # from srcore import pipeline
                names += [f"srcore.{a.name}" for a in node.names]
    return [n for n in names if n == "srcore" or n.startswith("srcore.")]


def test_api_and_persistence_import_only_srcore_jobspec():
    files = [p for d in ("api", "persistence") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 10  # the scan saw the packages
    seen, outside = set(), {}
    for path in files:
        for name in srcore_imports(path):
            seen.add(name)
            if name != "srcore.jobspec" and not name.startswith("srcore.jobspec."):
                outside.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert outside == {}
    assert "srcore.jobspec.spec" in seen  # the API validates specs with it


def test_importing_all_of_srcore_jobspec_imports_no_torch():
    modules = sorted(
        m.name for m in pkgutil.walk_packages(srcore.jobspec.__path__, "srcore.jobspec.")
    )
    assert {
        "srcore.jobspec.spec",
        "srcore.jobspec.task_registry",
        "srcore.jobspec.callbacks",
    } <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout))
    assert set(modules) <= loaded
    assert not {"torch", "transformers", "datasets", "numpy"} & loaded
    # nothing of srcore outside jobspec came along
    assert {m for m in loaded if m.startswith("srcore.")} <= {"srcore.jobspec", *modules}

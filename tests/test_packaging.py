"""The wheel ships the package, the plugins (as advisor_plugins) and the catalog, and works installed."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    [whl] = out.glob("model_advisor-*.whl")
    return whl


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "advisor").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "advisor_catalog/hardware.yaml" in names and "advisor_catalog/tasks.yaml" in names
    assert sum(1 for n in names if n.startswith("advisor_catalog/models/") and n.endswith(".yaml")) >= 5
    assert "advisor_plugins/run_context.py" in names and "advisor_plugins/evaluator.py" in names
    assert not any(n.startswith("plugins/") for n in names), "never a top-level package called plugins"
    assert "advisor/cli/app.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mlflow.run_context_provider" in text and "advisor_plugins.run_context" in text
    assert "advisor = advisor.cli.app:main" in text


def test_installed_wheel_runs_catalog_list(wheel, tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import advisor, advisor.catalog.loader as l; "
                            "print(advisor.__file__); print(l.builtin_catalog_dir())"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(target)) for line in where.stdout.split()), where.stdout  # not the source tree
    r = subprocess.run([sys.executable, "-m", "advisor", "catalog", "list", "--json"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"qwen2.5-0.5b"' in r.stdout
    r = subprocess.run([sys.executable, "-m", "advisor", "catalog", "validate", str(target / "advisor_catalog")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and "valid" in r.stdout, r.stderr

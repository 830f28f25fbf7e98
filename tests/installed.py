"""model-advisor installed the way a user installs it: a wheel built from this tree, put into a
fresh virtual environment by pip (no `-e`, no source tree on sys.path), run through the installed
`advisor` console script.

tests/conftest.py builds the wheel once per session and makes two environments from it, also
once per session:
- `plain_install`: `pip install WHEEL`, no extras (what a CI gate installs);
- `probe_install`: `pip install "WHEEL[probe]"`, with torch pinned to the version the tests run
  with (an unpinned torch would pull a multi-GB CUDA build).

Both are real venvs (no --system-site-packages): pip resolves every dependency from the index,
so a missing or wrong requirement in pyproject.toml shows here. Without a reachable index the
fixtures skip, saying so; any other install failure fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_S = float(os.environ.get("ADVISOR_TEST_PIP_TIMEOUT_S", "900"))
# pip's wording when it cannot reach an index at all (not: a requirement that does not exist).
_OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Name or service not known|"
                      r"Temporary failure in name resolution|Network is unreachable|No route to host")
# The tests' own variables that must not leak into an installed command.
_DROP_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "MLFLOW_TRACKING_URI",
             "MLFLOW_REGISTRY_URI", "ADVISOR_DEBUG")


@dataclass
class Install:
    root: Path                      # the venv
    spec: str                       # what pip was given
    install_s: float = 0.0
    measured: dict = field(default_factory=dict)   # figures a test reports (conftest prints them)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def advisor_exe(self) -> Path:
        return self.bin / "advisor"

    def env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        env.update(extra or {})
        return env

    def advisor(self, *args: str, cwd: Path, env: dict | None = None, timeout: float = 300
                ) -> subprocess.CompletedProcess:
        """The installed console script, as a CI step calls it."""
        return subprocess.run([str(self.advisor_exe), *args], cwd=cwd, env=self.env(env), capture_output=True,
                              text=True, timeout=timeout)

    def shell(self, command: str, *, cwd: Path, env: dict | None = None, timeout: float = 300
              ) -> subprocess.CompletedProcess:
        """A CI step's `run:` line, with this venv first on PATH (as after `pip install` on a runner)."""
        return subprocess.run(["bash", "-c", command], cwd=cwd, env=self.env(env), capture_output=True, text=True,
                              timeout=timeout)

    def distributions(self) -> set[str]:
        """Normalised names of every distribution installed in the venv."""
        code = ("import importlib.metadata as m, re; "
                "print('\\n'.join(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() "
                "for d in m.distributions()})))")
        out = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, timeout=120,
                             env=self.env(), check=True).stdout
        return set(out.split())

    def size_mb(self) -> float:
        """Disk used by the venv in MiB, as `du -sm` counts it (allocated blocks, each inode once)."""
        seen, blocks = set(), 0
        for dirpath, dirs, files in os.walk(self.root):
            for name in [*dirs, *files, "."]:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    blocks += st.st_blocks
        return blocks * 512 / 2**20


def build_wheel(out: Path) -> Path:
    """`pip wheel` of this tree (no dependencies, no isolation: setuptools is already here)."""
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    [whl] = out.glob("model_advisor-*.whl")
    return whl


def make_venv(root: Path, *requirements: str) -> Install:
    """A fresh venv (its own pip, nothing inherited) and `pip install REQUIREMENTS` into it."""
    if root.exists():
        shutil.rmtree(root)
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    r = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *requirements], capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env)
    if r.returncode != 0:
        output = r.stdout + r.stderr
        if _OFFLINE.search(output):
            pytest.skip(f"no package index reachable to install {' '.join(requirements)} into a fresh venv: "
                        f"{output.strip().splitlines()[-1][:200]}")
        raise AssertionError(f"pip install {' '.join(requirements)} failed:\n"
                             + "\n".join(line for line in output.splitlines() if "Location 'file:" not in line)[-3000:])
    return Install(root, " ".join(requirements), install_s=time.monotonic() - started)


def torch_pin() -> str | None:
    """torch==<the version these tests run with>, or None when torch is not installed here."""
    from importlib import metadata

    try:
        return f"torch=={metadata.version('torch')}"
    except metadata.PackageNotFoundError:
        return None

"""Install size and gate speed of a plain install, as a CI job gets it.

Builds the wheel of this tree, `pip install`s it into a fresh venv (no extras, no -e; pip resolves
every dependency), then prints the venv's size (`du -sm`) and the wall time of the installed
`advisor` script for `--help` and for a gate on a named target without MLflow:

    python benchmarks/install_size.py [--runs 5] [--extras mlflow] [--keep DIR]

Goals (issue 13): a plain install <= 350 MB; `advisor check` on a named target <= 2 s there.
`--extras mlflow` also measures the full install (README's set-up without torch) for comparison.
Timings are medians of --runs runs after one warm-up run (Python's bytecode cache is written then).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE_GOAL_MB = 350
CHECK_GOAL_S = 2.0
CHECK = ["check", "qwen2.5-3b", "--target", "a10g-24gb", "--task", "summarization", "--junit", "junit.xml"]


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, timeout=600)
    [whl] = out.glob("model_advisor-*.whl")
    return whl


def clean_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def make_venv(venv: Path, requirement: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    requirement], check=True, timeout=1800, env=clean_env(venv))
    return time.monotonic() - started


def du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def timed(venv: Path, args: list[str], cwd: Path, runs: int, env: dict) -> tuple[float, list[float], int]:
    walls, rc = [], 0
    for i in range(runs + 1):
        started = time.monotonic()
        proc = subprocess.run([str(venv / "bin" / "advisor"), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        wall = time.monotonic() - started
        rc = proc.returncode
        if rc not in (0, 1):
            raise SystemExit(f"advisor {' '.join(args)} exited {rc}: {proc.stderr.strip()[-500:]}")
        if i:  # the first run writes the bytecode cache
            walls.append(wall)
    return statistics.median(walls), walls, rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (after one warm-up)")
    ap.add_argument("--extras", action="append", default=[], help="also measure an install with this extra")
    ap.add_argument("--keep", type=Path, help="build the venvs here and keep them")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    root = args.keep or Path(tempfile.mkdtemp(prefix="advisor-install-size-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        wheel = build_wheel(root / "wheel")
        rows = []
        for extra in [None, *args.extras]:
            venv = root / (f"venv-{extra}" if extra else "venv-plain")
            if venv.exists():
                shutil.rmtree(venv)
            install_s = make_venv(venv, f"{wheel}[{extra}]" if extra else str(wheel))
            work = root / f"work-{extra or 'plain'}"
            work.mkdir(exist_ok=True)
            env = clean_env(venv)
            env["ADVISOR_REPORTS_DIR"] = str(root / "reports")
            help_s, _, _ = timed(venv, ["--help"], work, args.runs, env)
            check_s, walls, rc = timed(venv, CHECK, work, args.runs, env)
            left = sorted(p.name for p in work.iterdir() if p.name != "junit.xml")
            rows.append((f"pip install {'.[' + extra + ']' if extra else '.'}", du_mb(venv), install_s, help_s,
                         check_s, walls, rc, left))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print(f"model-advisor from its wheel, fresh venv each (Python {sys.version.split()[0]}, {sys.platform}); "
          f"medians of {args.runs} runs after a warm-up")
    print(f"{'install':<24}{'venv MB':>9}{'pip s':>8}{'--help s':>10}{'check s':>9}  check runs / exit / files left")
    for name, size, install_s, help_s, check_s, walls, rc, left in rows:
        print(f"{name:<24}{size:>9}{install_s:>8.0f}{help_s:>10.2f}{check_s:>9.2f}  "
              f"{', '.join(f'{w:.2f}' for w in walls)} / {rc} / {left or 'none'}")
    plain = rows[0]
    size_ok, check_ok = plain[1] <= SIZE_GOAL_MB, plain[4] <= CHECK_GOAL_S
    print(f"goal: plain install <= {SIZE_GOAL_MB} MB: {plain[1]} MB, {'met' if size_ok else 'NOT met'}")
    print(f"goal: `advisor {' '.join(CHECK)}` <= {CHECK_GOAL_S:.0f} s without MLflow: {plain[4]:.2f} s, "
          f"{'met' if check_ok else 'NOT met'}")
    return 0 if size_ok and check_ok else 1


if __name__ == "__main__":
    sys.exit(main())

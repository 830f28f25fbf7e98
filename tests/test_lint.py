"""Lint and types, run by the README's test command (and so by CI).

ruff must report nothing with the rule set in pyproject.toml. mypy on advisor/ is held to a baseline
(tests/fixtures/mypy-baseline.txt: errors per file and code) that may only shrink: a new error fails,
a fixed one is reported so the baseline can be lowered with `python tests/test_lint.py --update`.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "tests" / "fixtures" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<file>[^:]+\.py):\d+(?::\d+)?: error: .*\[(?P<code>[a-z0-9-]+)\]$")


def _tool(name: str) -> list[str]:
    try:
        __import__(name)
    except ImportError:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", name]


def mypy_counts() -> collections.Counter:
    r = subprocess.run([*_tool("mypy"), "advisor"], cwd=REPO, capture_output=True, text=True, timeout=900)
    counts: collections.Counter = collections.Counter()
    for line in r.stdout.splitlines():
        m = ERROR.match(line.strip())
        if m:
            counts[f"{m['file']} {m['code']}"] += 1
    if r.returncode not in (0, 1) or (r.returncode == 1 and not counts):
        pytest.fail(f"mypy did not run: {r.stdout[-500:]} {r.stderr[-500:]}")
    return counts


def read_baseline() -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for line in BASELINE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, n = line.rsplit(" ", 1)
            counts[key] = int(n)
    return counts


def test_ruff_reports_nothing():
    r = subprocess.run([*_tool("ruff"), "check", "advisor", "plugins", "benchmarks", "tests"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]


def test_mypy_errors_never_grow_beyond_the_baseline():
    now, base = mypy_counts(), read_baseline()
    grown = {k: (base.get(k, 0), n) for k, n in now.items() if n > base.get(k, 0)}
    assert not grown, "new mypy errors (file code: baseline -> now): " + "; ".join(
        f"{k}: {a} -> {b}" for k, (a, b) in sorted(grown.items()))
    shrunk = sum(base.values()) - sum(now.values())
    if shrunk > 0:
        print(f"\nmypy: {shrunk} fewer errors than the baseline; lower it: python tests/test_lint.py --update")


if __name__ == "__main__" and "--update" in sys.argv:
    counts = mypy_counts()
    BASELINE.write_text("# mypy errors per file and code on advisor/ (tests/test_lint.py); may only shrink\n"
                        + "".join(f"{k} {n}\n" for k, n in sorted(counts.items())))
    print(f"{BASELINE}: {sum(counts.values())} errors in {len({k.split()[0] for k in counts})} files")

"""Mutation score of the modules whose decisions the tests must pin (issue 15's goal: >= 85% killed each).

    python benchmarks/mutation.py                      # every module below, its own test files
    python benchmarks/mutation.py --module advisor/rules/table.py --limit 20 --seed 1

Each mutant changes one operator or constant of one module (comparison flipped, arithmetic swapped,
and/or exchanged, a condition negated, a number moved by one, True/False swapped), in a copy of the
source tree; the module's test files then run against it (`pytest -x -q`, the copy first on
PYTHONPATH). A mutant is killed when the tests fail or time out. Docstrings and other strings are never
mutated. The score is killed / mutants per module; the survivors are printed with their line, so each
can be read and either killed by a test or recognised as equivalent (say which in the note).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# module -> the tests that pin its decisions
TARGETS: dict[str, list[str]] = {
    "advisor/rules/table.py": ["tests/test_rules.py", "tests/test_recommend_verdicts.py"],
    "advisor/recommend/quality.py": ["tests/test_quality_proxy.py"],
    "advisor/check/rules.py": ["tests/test_check_rules.py", "tests/test_rules.py"],
    "advisor/recommend/pareto.py": ["tests/test_recommend_select.py"],
    "advisor/estimate/latency.py": ["tests/test_estimate_latency_hand.py", "tests/test_estimate_latency.py",
                                    "tests/test_estimate_serving.py", "tests/test_estimate_kernels.py"],
}

SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.Mult, ast.Pow: ast.Mult}
SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass(frozen=True)
class Mutant:
    index: int          # the n-th mutable site of the module
    line: int
    what: str


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                out.add(id(first.value))
    return out


def sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every place one mutation can be made, in a stable order."""
    skip = _docstring_nodes(tree)
    found: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
            found.append((node, f"{type(node.op).__name__} -> {SWAP_BINOP[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in SWAP_CMP:
                    found.append((node, f"cmp{i}:{type(op).__name__} -> {SWAP_CMP[type(op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            found.append((node, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}"))
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
            found.append((node, "negate condition"))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            v = node.value
            if isinstance(v, bool):
                found.append((node, f"{v} -> {not v}"))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                found.append((node, f"{v!r} -> {v + 1!r}"))
    return found


def mutate(source: str, index: int) -> tuple[str, Mutant]:
    tree = ast.parse(source)
    node, what = sites(tree)[index]
    if isinstance(node, ast.BinOp):
        node.op = SWAP_BINOP[type(node.op)]()
    elif isinstance(node, ast.Compare):
        i = int(what.split(":")[0][3:])
        node.ops[i] = SWAP_CMP[type(node.ops[i])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif isinstance(node, ast.Constant):
        node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
    return ast.unparse(tree), Mutant(index, getattr(node, "lineno", 0), what)


def run_tests(copy: Path, tests: list[str], timeout: float) -> bool:
    """True when the tests pass (the mutant survives)."""
    env = {**os.environ, "PYTHONPATH": str(copy) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "ADVISOR_PROBE_IGNORE_LOAD": "1"}
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                            "-p", "no:randomly", *tests], cwd=copy, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", action="append", help="module path (repeatable); default: all of TARGETS")
    ap.add_argument("--limit", type=int, default=None, help="at most this many mutants per module (sampled)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per test run; a timeout kills the mutant")
    args = ap.parse_args(argv)
    modules = args.module or list(TARGETS)
    for m in modules:
        if m not in TARGETS:
            ap.error(f"unknown module {m} (known: {', '.join(TARGETS)})")
    tmp = Path(tempfile.mkdtemp(prefix="advisor-mutants-"))
    copy = tmp / "repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info",
                                                              "build", "dist", ".pytest_cache", ".hypothesis"))
    probe = subprocess.run([sys.executable, "-c", "import advisor, sys; print(advisor.__file__)"], cwd=copy,
                           env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
    if not probe.stdout.strip().startswith(str(copy)):
        print(f"error: the copy's advisor package does not come first on the path ({probe.stdout.strip()})")
        return 2
    rng = random.Random(args.seed)
    results = []
    try:
        for module in modules:
            src_path = copy / module
            original = src_path.read_text()
            tests = TARGETS[module]
            if not run_tests(copy, tests, args.timeout):
                print(f"{module}: its tests fail on the unmutated code; skipped")
                continue
            n = len(sites(ast.parse(original)))
            chosen = list(range(n))
            if args.limit is not None and args.limit < n:
                chosen = sorted(rng.sample(chosen, args.limit))
            killed, survivors, t0 = 0, [], time.perf_counter()
            for k, i in enumerate(chosen, 1):
                mutated, mutant = mutate(original, i)
                src_path.write_text(mutated)
                try:
                    if run_tests(copy, tests, args.timeout):
                        survivors.append(mutant)
                    else:
                        killed += 1
                finally:
                    src_path.write_text(original)
                if sys.stdout.isatty():
                    print(f"\r{module}: {k}/{len(chosen)} mutants, {killed} killed", end="", flush=True)
            score = killed / len(chosen) if chosen else 1.0
            print(f"\r{module}: {killed}/{len(chosen)} killed = {score:.0%} "
                  f"({'met' if score >= 0.85 else 'NOT met'}; goal >= 85%) in {time.perf_counter() - t0:.0f} s"
                  + (f", sampled from {n}" if len(chosen) < n else ""))
            for s in survivors:
                print(f"    survived: line {s.line}: {s.what}")
            results.append((module, killed, len(chosen)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nmodule | killed | mutants | score")
    for module, killed, total in results:
        print(f"{module} | {killed} | {total} | {killed / total:.0%}" if total else f"{module} | 0 | 0 | -")
    return 0


if __name__ == "__main__":
    sys.exit(main())

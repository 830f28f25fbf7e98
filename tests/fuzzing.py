"""Structure-aware generators and an in-process runner for fuzzing every input a user writes.

Shared by tests/test_fuzz_inputs.py (a few hundred cases per kind in CI) and
benchmarks/fuzz_inputs.py (>= 5,000 per kind). A *case* is a set of files plus the argv of one
`advisor` command (or, for inputs with no command of their own, a direct call of the loader);
`run_case` drives the real CLI entry point (advisor.cli.guard.run_cli) in this process with
stdout/stderr captured, and `classify` decides whether the outcome was clean.

Clean: exit 0 or 1 with no traceback and no "internal error", or exit 2 with exactly one
"error: ..." line. Anything else is a CRASH: a traceback, "error: internal error: ...", an
exception escaping run_cli, another exit code, or a case running past its time limit (a hang).

Generation mutates valid documents (tests/fixtures/fuzz/*): dropped keys, wrong types,
negative/huge/NaN numbers, unicode, deep nesting, duplicate entries and ids, unknown keys; then the
serialised text itself: truncation, non-UTF-8 bytes, BOMs, YAML tags/anchors/merge keys, duplicate
keys, "billion laughs" alias bombs, empty files and binary garbage.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shlex
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
FUZZ_FIXTURES = REPO / "tests" / "fixtures" / "fuzz"
HW_FIXTURES = REPO / "tests" / "fixtures" / "hardware"

KINDS = ("catalog", "hardware", "task", "hf-config", "cli-args", "policy", "probe-cache",
         "hardware-profile", "recommend-config")

# Generated documents are cut at this size: parsing is linear (about 0.3 MB/s for PyYAML in pure
# Python), so megabyte files only measure the parser's speed, not the advisor's handling.
MAX_DOC_BYTES = 256_000
# A case may run this long in-process before it counts as a hang. Real cases take < 0.5 s.
CASE_TIMEOUT_S = float(os.environ.get("ADVISOR_FUZZ_CASE_TIMEOUT_S", "8"))


# --------------------------------------------------------------------------- base documents

def _yaml(name: str) -> Any:
    return yaml.safe_load((FUZZ_FIXTURES / name).read_text(encoding="utf-8"))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


BASE_CATALOG = _yaml("catalog.yaml")
BASE_HARDWARE = _yaml("hardware.yaml")
BASE_TASKS = _yaml("tasks.yaml")
BASE_POLICY = _yaml("policy.yaml")
BASE_RECOMMEND_CONFIG = _yaml("recommend-config.yaml")
BASE_HF = {p.name: _json(p) for p in sorted((FUZZ_FIXTURES / "hf").glob("*.json"))}
BASE_PROFILES = {p.name: _json(p) for p in sorted(HW_FIXTURES.glob("*.json"))} if HW_FIXTURES.is_dir() else {}

GPT2_CONFIG = (FUZZ_FIXTURES / "hf" / "gpt2.json").read_bytes()
CATALOG_BYTES = (FUZZ_FIXTURES / "catalog.yaml").read_bytes()
HARDWARE_BYTES = (FUZZ_FIXTURES / "hardware.yaml").read_bytes()
TASKS_BYTES = (FUZZ_FIXTURES / "tasks.yaml").read_bytes()


# --------------------------------------------------------------------------- values

NASTY_STRINGS = [
    "", " ", "\t", "\n", "~", "null", "None", "yes", "no", "on", "off", "true", "NaN", ".nan", ".inf",
    "-.inf", "1e999", "-1", "0", "0x10", "0o17", "1_000", "8b", "8e9", "1,5", "2024-01-01", "12:30:00",
    "../../etc/passwd", "/etc/passwd", "..", ".", "-", "--", "--help", "C:\\Windows\\system32",
    "a" * 300, "x" * 5000, "\x00", "\x1b[31mred\x1b[0m", "é", "日本語", "🤖", "\u202e", "\ufeff",
    "%s%s%n", "{0}", "${HOME}", "$(id)", "`id`", "'", '"', "\\", "*alias", "&anchor", "!!python/object",
    "models:/x/1", "http://127.0.0.1:1/", "file:///etc/passwd", "Qwen/Qwen2.5-0.5B", "fuzz-qwen-0.5b",
    "FUZZ-QWEN-0.5B", "fuzz-gpu-24gb", "fuzz-task", "local", "bf16", "int4", "fp8", "apache-2.0",
]

NASTY_NUMBERS = [
    0, -1, 1, 2, -0.0, 0.5, 1e-300, 1e300, -1e300, 2**31, 2**63, 2**64, 10**30, -(10**30), 10**400,
    float("inf"), float("-inf"), float("nan"), 3.5, True, False,
]


def scalars() -> st.SearchStrategy:
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(NASTY_NUMBERS),
        st.sampled_from(NASTY_STRINGS),
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40),
    )


def values() -> st.SearchStrategy:
    return st.recursive(scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12, alphabet=st.characters(exclude_categories=("Cs",))), inner, max_size=4)),
        max_leaves=12)


def deep(depth: int, kind: str) -> Any:
    out: Any = 1
    for _ in range(depth):
        out = [out] if kind == "list" else {"a": out}
    return out


# --------------------------------------------------------------------------- document mutation

@contextlib.contextmanager
def _recursion_limit(n: int):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, n))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)



def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if len(prefix) > 12:  # inside a deep-nested value: its top is mutation target enough
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


OPS = ("delete", "replace", "replace", "retype", "add_key", "duplicate", "duplicate_id", "wrap_list",
       "wrap_dict", "deep_nest", "numeric_edge", "numeric_edge", "string_edge", "empty")


@st.composite
def mutated(draw, base: Any, max_ops: int = 4) -> Any:
    """A deep copy of `base` with 0..max_ops structural mutations applied at drawn places."""
    doc = copy.deepcopy(base)
    with _recursion_limit(30000):
        for _ in range(draw(st.integers(0, max_ops))):
            paths = _paths(doc)
            path = draw(st.sampled_from(paths))
            op = draw(st.sampled_from(OPS))
            doc = _apply(draw, doc, path, op)
    return doc


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _apply(draw, doc: Any, path: tuple, op: str) -> Any:
    node = _get(doc, path)
    if op == "delete":
        if not path:
            return None
        parent = _get(doc, path[:-1])
        del parent[path[-1]]
        return doc
    if op == "replace":
        return _set(doc, path, draw(values()))
    if op == "retype":
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            new = draw(st.sampled_from([str(node), f"{node} GB", [node], {"value": node}, None, True]))
        elif isinstance(node, str):
            new = draw(st.sampled_from([[node], {node: node}, 42, None, node.upper(), node * 3, ""]))
        elif isinstance(node, list):
            new = draw(st.sampled_from([{"0": node[0] if node else None}, "a,b", len(node), None]))
        elif isinstance(node, dict):
            new = draw(st.sampled_from([list(node.items())[:3], list(node)[:3], "mapping", 0]))
        else:
            new = draw(scalars())
        return _set(doc, path, new)
    if op == "add_key":
        if isinstance(node, dict):
            key = draw(st.one_of(st.sampled_from(["id", "extra", "__lines__", "__self__", "<<", "", "ID",
                                                  "models", "targets", "hidden_size", "n_embd"]),
                                 st.text(max_size=10, alphabet=st.characters(exclude_categories=("Cs",)))))
            node[key] = draw(values())
        elif isinstance(node, list):
            node.insert(draw(st.integers(0, len(node))), draw(values()))
        return doc
    if op == "duplicate":
        if isinstance(node, list) and node:
            node.append(copy.deepcopy(node[draw(st.integers(0, len(node) - 1))]))
        return doc
    if op == "duplicate_id":  # a second entry with the same id but other figures
        if isinstance(node, list) and node and isinstance(node[0], dict):
            twin = copy.deepcopy(node[0])
            for k, v in list(twin.items()):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    twin[k] = v * 2
            node.append(twin)
        return doc
    if op == "wrap_list":
        return _set(doc, path, [node])
    if op == "wrap_dict":
        return _set(doc, path, {"value": node})
    if op == "deep_nest":
        return _set(doc, path, deep(draw(st.sampled_from([10, 100, 900, 3000])),
                                    draw(st.sampled_from(["list", "dict"]))))
    if op == "numeric_edge":
        return _set(doc, path, draw(st.sampled_from(NASTY_NUMBERS)))
    if op == "string_edge":
        return _set(doc, path, draw(st.sampled_from(NASTY_STRINGS)))
    if op == "empty":
        return _set(doc, path, draw(st.sampled_from([{}, [], "", None])))
    raise AssertionError(op)


# --------------------------------------------------------------------------- serialisation

def laughs(levels: int, fanout: int, *, where: str = "models") -> str:
    """A 'billion laughs' alias bomb: fanout**levels strings from a few hundred bytes of YAML."""
    names = [f"l{i}" for i in range(levels + 1)]
    lines = ["anchors:", f"  - &{names[0]} [" + ", ".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"  - &{names[i]} [" + ", ".join([f"*{names[i - 1]}"] * fanout) + "]")
    if where == "models":
        lines += ["models:", "  - id: bomb", "    name: bomb", f"    aliases: *{names[-1]}",
                  f"    notes: *{names[-1]}"]
    elif where == "targets":
        lines += ["targets:", "  - id: bomb", f"    peak_tflops: {{fp32: *{names[-1]}}}", f"    name: *{names[-1]}"]
    elif where == "tasks":
        lines += ["tasks:", "  - id: bomb", f"    quality_proxy: {{description: x, weights: {{mmlu: *{names[-1]}}}}}",
                  f"    description: *{names[-1]}"]
    else:  # a top-level mapping (policy, recommend config)
        lines += [f"targets: *{names[-1]}", f"license: *{names[-1]}", f"catalog: *{names[-1]}"]
    return "\n".join(lines) + "\n"


YAML_SNIPPETS = [
    "!!python/object/apply:os.system ['echo PWNED > /tmp/advisor-fuzz-pwned']",
    "!!python/object/new:subprocess.Popen [['id']]",
    "!!python/name:os.system",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    "!!omap [a: 1, b: 2]",
    "!!float .nan",
    "!!int abc",
    "!!float not-a-number",
    "!!timestamp yesterday",
    "!!bool maybe",
    "!!binary '@@@'",
    "!!str",
    "!!int 99999999999999999999999999999999999",
    "!custom tag",
    "&a [*a]",
    "*undefined",
    "<<: {id: merged}",
    "? [complex, key]\n: value",
    "'unterminated",
    "\"\\x00\\uD800\"",
    "%YAML 1.1\n---",
    "---\nsecond: document",
    "...",
    "\t- tab: indented",
    "key: value\nkey: duplicate",
    "{a: 1, a: 2}",
    "- [" * 200,
    "{x: " * 200,
    "&anchor_only",
    ": no key",
    "@reserved",
    "`backtick",
    "|\n  literal\n   block",
]


@st.composite
def yaml_text(draw, base: Any, *, bomb_where: str = "models") -> bytes:
    """A YAML document: mostly a mutated `base`, sometimes a hostile whole document; then byte edits."""
    choice = draw(st.integers(0, 99))
    if choice < 6:
        levels = draw(st.integers(1, 9))
        fanout = draw(st.integers(2, 10))
        return laughs(levels, fanout, where=bomb_where).encode()
    if choice < 10:
        return draw(st.sampled_from([
            b"", b" ", b"\n\n", b"~", b"null", b"[]", b"{}", b"42", b"-", b"---", b"...", b"\xef\xbb\xbf",
            b"\x00" * 64, b"[" * 10000, b"{a: " * 10000, b"- " * 5000 + b"x", b"a: " + b"x" * 200_000,
            b"\xff\xfe" + "models: []".encode("utf-16-le"), "models: [{id: é}]".encode("latin-1"),
        ]))
    if choice < 13:
        return draw(st.binary(max_size=300))
    doc = draw(mutated(base))
    style = draw(st.sampled_from(["block", "flow", "json", "canonical"]))
    unicode = draw(st.booleans())
    with _recursion_limit(30000):
        try:
            if style == "json":
                text = json.dumps(doc, default=str)
            else:
                text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=unicode,
                                      default_flow_style=(style == "flow"), canonical=(style == "canonical"))
        except (ValueError, RecursionError, yaml.YAMLError):
            text = "models: " + "[" * 3000 + "1" + "]" * 3000 + "\n"
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_DOC_BYTES:   # an indented 3000-deep document is megabytes: keep its head
        data = data[:MAX_DOC_BYTES]
    return draw(byte_edits(data))


@st.composite
def byte_edits(draw, data: bytes, *, snippets: list[str] = YAML_SNIPPETS) -> bytes:
    """0..3 edits of the serialised text: truncation, garbage, hostile snippets, re-encoding."""
    edits = draw(st.integers(1, 3)) if draw(st.integers(0, 2)) == 0 else 0   # a third of the cases
    for _ in range(edits):
        op = draw(st.sampled_from(["truncate", "insert_bytes", "snippet_line", "replace_line", "encoding",
                                   "bom", "crlf", "nul"]))
        lines = data.split(b"\n")
        if op == "truncate" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "insert_bytes":
            pos = draw(st.integers(0, len(data)))
            data = data[:pos] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\x80\x81",
                                                      b"\xf4\x90\x80\x80"])) + data[pos:]
        elif op in ("snippet_line", "replace_line") and lines:
            i = draw(st.integers(0, len(lines) - 1))
            snippet = draw(st.sampled_from(snippets)).encode()
            if op == "snippet_line":
                # keep the key, swap the value: "  hidden_size: 896" -> "  hidden_size: !!binary ..."
                head, sep, _ = lines[i].partition(b":")
                lines[i] = head + b": " + snippet if sep else snippet
            else:
                lines.insert(i, snippet)
            data = b"\n".join(lines)
        elif op == "encoding":
            try:
                data = data.decode("utf-8").encode(draw(st.sampled_from(["latin-1", "utf-16", "utf-32", "cp1252"])),
                                                   "replace")
            except UnicodeDecodeError:
                pass
        elif op == "bom":
            data = b"\xef\xbb\xbf" + data
        elif op == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif op == "nul":
            data = data.replace(b" ", b"\x00", 1)
    return data


@st.composite
def json_text(draw, base: Any) -> bytes:
    choice = draw(st.integers(0, 99))
    if choice < 8:
        return draw(st.sampled_from([
            b"", b"null", b"[]", b"{}", b"42", b'"x"', b"[" * 100000, b'{"a":' * 100000, b"NaN", b"Infinity",
            b'{"hidden_size": 1e999}', b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00",
            b'{"model_type": "llama", "hidden_size": 9' + b"9" * 5000 + b"}",
        ]))
    if choice < 11:
        return draw(st.binary(max_size=300))
    doc = draw(mutated(base))
    ascii_only = draw(st.booleans())
    with _recursion_limit(30000):
        try:
            text = json.dumps(doc, allow_nan=True, ensure_ascii=ascii_only)
        except (ValueError, RecursionError):
            text = '{"hidden_size": ' + "[" * 3000 + "1" + "]" * 3000 + "}"
    data = text.encode("utf-8", "surrogatepass")[:MAX_DOC_BYTES]
    return draw(byte_edits(data,
                           snippets=['"x"', "NaN", "-Infinity", "1e400", "[", "}", '"\\ud800"', "null", ",,"]))


# --------------------------------------------------------------------------- cases

@dataclass
class Case:
    kind: str
    files: dict[str, bytes]
    argv: list[str]                      # "{dir}" is replaced by the case's folder
    env: dict[str, str] = field(default_factory=dict)
    direct: str | None = None            # "policy" / "probe-cache": call the loader, not the CLI

    def describe(self, limit: int = 400) -> str:
        files = {k: (v[:limit] + (b"..." if len(v) > limit else b"")) for k, v in self.files.items()}
        return f"kind={self.kind} argv={shlex.join(self.argv)} env={self.env} direct={self.direct} files={files!r}"

    def save(self, folder: Path) -> None:
        """Write the case as a reproducer: the files, and argv/env in case.json."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            p = folder / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        (folder / "case.json").write_text(json.dumps(
            {"kind": self.kind, "argv": self.argv, "env": self.env, "direct": self.direct}, indent=1))


NO_WORK = ["--no-probe", "--no-mlflow"]


def _recommend(*extra: str) -> list[str]:
    return ["recommend", *NO_WORK, "--json", *extra]


@st.composite
def catalog_case(draw) -> Case:
    data = draw(yaml_text(BASE_CATALOG))
    files = {"user.yaml": data, "hf/gpt2.json": GPT2_CONFIG}
    model = draw(st.sampled_from(["fuzz-qwen-0.5b", "fuzz-gpt2", "fuzz-moe", "Fuzz/Qwen-0.5B", "bomb"]))
    argv = draw(st.sampled_from([
        ["catalog", "validate", "{dir}/user.yaml"],
        ["catalog", "validate", "{dir}"],
        ["catalog", "list", "--catalog", "{dir}/user.yaml", "--json"],
        ["catalog", "list", "--catalog", "{dir}/user.yaml", "--task", "fuzz-task"],
        ["catalog", "show", model, "--catalog", "{dir}/user.yaml"],
        ["catalog", "show", model, "--catalog", "{dir}/user.yaml", "--json"],
        _recommend("--catalog", "{dir}/user.yaml", "--task", "fuzz-task", "--target", "fuzz-gpu-24gb"),
        _recommend("--catalog", "{dir}/user.yaml", "--task", "fuzz-task", "--target", "fuzz-gpu-24gb",
                   "--user-models-only", "--formats", "int8,int4"),
    ]))
    return Case("catalog", files, argv)


@st.composite
def hardware_case(draw) -> Case:
    data = draw(yaml_text(BASE_HARDWARE, bomb_where="targets"))
    files = {"hardware.yaml": data, "tasks.yaml": TASKS_BYTES}
    target = draw(st.sampled_from(["fuzz-a10g", "fuzz-cpu-64gb", "bomb", "FUZZ-A10G"]))
    argv = draw(st.sampled_from([
        ["catalog", "validate", "{dir}/hardware.yaml"],
        ["profile", "--target", target, "--catalog", "{dir}/hardware.yaml", "--json"],
        ["profile", "--target", target, "--catalog", "{dir}/hardware.yaml"],
        _recommend("--catalog", "{dir}/hardware.yaml", "--catalog", "{dir}/tasks.yaml",
                   "--task", "fuzz-summarization", "--target", target),
        _recommend("--catalog", "{dir}/hardware.yaml", "--catalog", "{dir}/tasks.yaml",
                   "--task", "fuzz-summarization", "--target", target, "--gpu-hour-cost", "2.5"),
    ]))
    return Case("hardware", files, argv)


@st.composite
def task_case(draw) -> Case:
    data = draw(yaml_text(BASE_TASKS, bomb_where="tasks"))
    files = {"tasks.yaml": data, "hardware.yaml": HARDWARE_BYTES}
    task = draw(st.sampled_from(["fuzz-summarization", "bomb"]))
    argv = draw(st.sampled_from([
        ["catalog", "validate", "{dir}/tasks.yaml"],
        ["catalog", "list", "--task", task, "--catalog", "{dir}/tasks.yaml", "--json"],
        _recommend("--catalog", "{dir}/tasks.yaml", "--catalog", "{dir}/hardware.yaml",
                   "--task", task, "--target", "fuzz-a10g"),
        _recommend("--catalog", "{dir}/tasks.yaml", "--catalog", "{dir}/hardware.yaml",
                   "--task", task, "--target", "fuzz-a10g", "--target", "fuzz-cpu-64gb"),
    ]))
    return Case("task", files, argv)


@st.composite
def hf_config_case(draw) -> Case:
    name = draw(st.sampled_from(sorted(BASE_HF)))
    data = draw(json_text(BASE_HF[name]))
    as_folder = draw(st.booleans())
    path = "model/config.json" if as_folder else "config.json"
    files = {path: data}
    target = "{dir}/model" if as_folder else "{dir}/config.json"
    entry = ("models:\n  - id: from-hf\n    name: from hf\n    family: x\n    params_total: 1000000\n"
             "    params_source: https://example.org/x\n    hf_config: " + path + "\n"
             "    license: mit\n    license_source: https://example.org/x\n").encode()
    argv = draw(st.sampled_from([
        ["catalog", "import-hf-config", target, "--id", "fuzz-imported"],
        ["catalog", "import-hf-config", target, "--id", "fuzz-imported", "--license", "apache-2.0"],
        ["catalog", "validate", "{dir}/entry.yaml"],
        ["catalog", "show", "from-hf", "--catalog", "{dir}/entry.yaml", "--json"],
    ]))
    if "entry.yaml" in " ".join(argv):
        files["entry.yaml"] = entry
    return Case("hf-config", files, argv)


@st.composite
def policy_case(draw) -> Case:
    data = draw(yaml_text(BASE_POLICY, bomb_where="top"))
    files = {"policy.yaml": data, "catalog.yaml": CATALOG_BYTES, "hf/gpt2.json": GPT2_CONFIG}
    if _command_exists("check") and draw(st.integers(0, 3)) > 0:
        flags = [f for f in NO_WORK if _has_option("check", f)]
        argv = ["check", "--policy", "{dir}/policy.yaml", *flags]
        extra = draw(st.sampled_from([[], ["--json"], ["--explain"], ["--target", "fuzz-gpu-24gb"],
                                      ["--max-latency-ms", "100"], ["--junit", "{dir}/junit.xml"]]))
        argv += [e for e in extra if e.startswith("{") or e.lstrip("-") == e or _has_option("check", e)]
        return Case("policy", files, argv)
    return Case("policy", files, ["{dir}/policy.yaml"], direct="policy")


@st.composite
def recommend_config_case(draw) -> Case:
    data = draw(yaml_text(BASE_RECOMMEND_CONFIG, bomb_where="top"))
    files = {"config.yaml": data, "catalog.yaml": CATALOG_BYTES, "hf/gpt2.json": GPT2_CONFIG}
    argv = _recommend("--config", "{dir}/config.yaml", "--catalog", "{dir}/catalog.yaml")
    return Case("recommend-config", files, argv)


@st.composite
def hardware_profile_case(draw) -> Case:
    """ADVISOR_HARDWARE_FIXTURE: a recorded profile or raw NVML readout standing in for this machine."""
    name = draw(st.sampled_from(sorted(BASE_PROFILES)))
    data = draw(json_text(BASE_PROFILES[name]))
    argv = draw(st.sampled_from([
        ["profile", "--json", "--no-torch"],
        ["profile", "--no-torch"],
        _recommend("--catalog", "{dir}/catalog.yaml", "--task", "fuzz-task", "--target", "local"),
    ]))
    files = {"profile.json": data, "catalog.yaml": CATALOG_BYTES, "hf/gpt2.json": GPT2_CONFIG}
    return Case("hardware-profile", files, argv, env={"ADVISOR_HARDWARE_FIXTURE": "{dir}/profile.json"})


def probe_cache_base(which: str = "calibration") -> tuple[Any, Any]:
    """A valid cache document (calibration result or microprobe rates) and the CacheKey it was written for."""
    from advisor.probe.cache import CACHE_SCHEMA_VERSION, CacheKey

    rates = {"device": "cpu", "matmul_tflops": {"fp32": 0.06, "bf16": 0.02}, "bandwidth_gbs": 24.0,
             "step_overhead_ms": 0.05, "per_layer_overhead_ms": 0.4, "torch_version": "2.13.0",
             "fingerprint": "fuzzfingerprint0"}
    if which == "rates":
        key = CacheKey(kind="microprobes", fingerprint="fuzzfingerprint0", device="cpu", torch="2.13.0")
        payload = rates
    else:
        key = CacheKey(kind="calibration", fingerprint="fuzzfingerprint0", device="cpu", torch="2.13.0",
                       transformers="5.0.0", model="fuzz-qwen-0.5b", architecture="0123456789abcdef",
                       format="bf16", batch=1, prompt_tokens=512, new_tokens=64)
        payload = {"rates": rates, "measurement": None, "skipped": "fuzz", "from_cache": False,
                   "does_not_fit": False, "detail": None, "notes": ["a note"]}
    doc = {"schema_version": CACHE_SCHEMA_VERSION, "key": key.model_dump(mode="json"),
           "created_utc": "2026-11-22T00:00:00+00:00", "payload": payload}
    return doc, key


@st.composite
def probe_cache_case(draw) -> Case:
    which = draw(st.sampled_from(["calibration", "rates"]))
    doc, _ = probe_cache_base(which)
    data = draw(json_text(doc))
    return Case("probe-cache", {"probe.json": data}, [which], direct="probe-cache")


# --------------------------------------------------------------------------- CLI arguments

_COMMANDS_CACHE: dict[str, Any] = {}


def _commands() -> dict[str, Any]:
    """'catalog list' -> click.Command for every leaf command the CLI has now."""
    if not _COMMANDS_CACHE:
        import click

        from advisor.cli.app import cli

        ctx = click.Context(cli)

        def walk(group, prefix):
            for name in group.list_commands(ctx):
                try:
                    cmd = group.get_command(ctx, name)
                except Exception:  # a command module being written right now
                    continue
                if cmd is None:
                    continue
                if isinstance(cmd, click.Group):
                    walk(cmd, prefix + [name])
                else:
                    _COMMANDS_CACHE[" ".join(prefix + [name])] = cmd
        walk(cli, [])
    return _COMMANDS_CACHE


def _command_exists(name: str) -> bool:
    return any(k == name or k.startswith(name + " ") for k in _commands())


def _has_option(command: str, flag: str) -> bool:
    cmd = _commands().get(command)
    return cmd is not None and any(flag in p.opts for p in cmd.params)


# Commands that do real work (probing, network) are fuzzed only with the flags that switch it off.
_SKIP_COMMANDS = {"probe", "log", "compare"}
_SKIP_OPTIONS = {"--tracking-uri", "--model-uri", "--set-alias-on-pass", "--experiment", "--refresh", "--budget-s"}
# Path values: nothing outside the case folder is written (the case runs with it as cwd).
# (No NUL: an argv from exec() cannot hold one.)
PATH_VALUES = ["user.yaml", "missing.yaml", ".", "sub", "out.md", "out.png", "hf/gpt2.json", "hf",
               "/dev/null", "/nonexistent/dir/file.yaml", "", "-", "ünïcode.yaml", "a" * 300, "sub/../user.yaml",
               "{dir}/user.yaml", "{dir}"]


ARG_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
ARG_STRINGS = [x for x in NASTY_STRINGS if "\x00" not in x]


def _value_for(param, draw) -> str:
    import click

    t = param.type
    if isinstance(t, click.Choice):
        return draw(st.one_of(st.sampled_from(list(t.choices)), st.sampled_from(ARG_STRINGS)))
    if isinstance(t, click.Path) or "path" in (param.name or ""):
        return draw(st.sampled_from(PATH_VALUES))
    if isinstance(t, (click.types.IntParamType, click.types.FloatParamType)):
        return draw(st.one_of(st.sampled_from([str(n) for n in NASTY_NUMBERS]),
                              st.integers(-(10**20), 10**20).map(str),
                              st.floats().map(repr), st.sampled_from(ARG_STRINGS)))
    return draw(st.one_of(st.sampled_from(ARG_STRINGS),
                          st.text(max_size=30, alphabet=ARG_CHARS),
                          st.sampled_from(["fuzz-qwen-0.5b", "fuzz-gpu-24gb", "fuzz-task", "8b", "500m",
                                           "bf16,int4", "int8,fp8", "mit,apache-2.0", "1e9", "-5"])))


@st.composite
def cli_args_case(draw) -> Case:
    import click

    commands = {k: v for k, v in _commands().items() if k.split()[0] not in _SKIP_COMMANDS}
    files = {"user.yaml": CATALOG_BYTES, "hf/gpt2.json": GPT2_CONFIG, "sub/.keep": b""}
    if draw(st.integers(0, 19)) == 0:  # top level: no command, unknown commands, global flags
        argv = draw(st.lists(st.one_of(st.sampled_from(["--help", "-h", "--version", "recomend", "catalg", "",
                                                         "--", "-x", "catalog", "list"]),
                                       st.text(max_size=10, alphabet=ARG_CHARS)),
                             max_size=4))
        return Case("cli-args", files, argv)
    name = draw(st.sampled_from(sorted(commands)))
    cmd = commands[name]
    argv = name.split()
    tokens: list[str] = []
    params = [p for p in cmd.params if p.name not in ("help",) and not set(p.opts) & _SKIP_OPTIONS]
    for _ in range(draw(st.integers(0, 6))):
        what = draw(st.integers(0, 9))
        if what <= 6 and params:
            p = draw(st.sampled_from(params))
            if isinstance(p, click.Argument):
                tokens.append(_value_for(p, draw))
            elif getattr(p, "is_flag", False):
                tokens.append(draw(st.sampled_from(p.opts + p.secondary_opts)))
            else:
                opt = draw(st.sampled_from(p.opts))
                value = _value_for(p, draw)
                tokens += [f"{opt}={value}"] if draw(st.integers(0, 4)) == 0 else [opt, value]
        elif what == 7:
            tokens.append(draw(st.sampled_from(["--help", "--", "-", "--json", "--unknown-flag", "-zz", "--task"])))
        else:
            tokens.append(draw(st.text(max_size=15, alphabet=ARG_CHARS)))
    # required arguments, sometimes
    for p in params:
        if isinstance(p, click.Argument) and p.required and draw(st.integers(0, 3)) > 0:
            tokens.insert(0, _value_for(p, draw))
    for flag in NO_WORK:
        if any(flag in p.opts for p in params):
            tokens.append(flag)
    if any("--no-torch" in p.opts for p in params) and draw(st.integers(0, 4)) > 0:
        tokens.append("--no-torch")   # profile without it imports torch once: slower, still allowed
    return Case("cli-args", files, argv + tokens)


STRATEGIES = {
    "catalog": catalog_case,
    "hardware": hardware_case,
    "task": task_case,
    "hf-config": hf_config_case,
    "cli-args": cli_args_case,
    "policy": policy_case,
    "probe-cache": probe_cache_case,
    "hardware-profile": hardware_profile_case,
    "recommend-config": recommend_config_case,
}


def strategy(kind: str) -> st.SearchStrategy[Case]:
    return STRATEGIES[kind]()


# --------------------------------------------------------------------------- running

class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case; a BaseException so run_cli's last-resort handler cannot eat it."""


@dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    crash: str | None = None

    @property
    def clean_error(self) -> bool:
        return self.crash is None and self.rc == 2


def classify(rc: int | None, stdout: str, stderr: str) -> str | None:
    """None when the outcome is clean, else why it counts as a crash."""
    if "Traceback (most recent call last)" in stderr or "Traceback (most recent call last)" in stdout:
        return "traceback"
    if "internal error" in stderr:
        line = next((ln for ln in stderr.splitlines() if "internal error" in ln), "")
        return line[:300]
    if rc not in (0, 1, 2):
        return f"exit code {rc}"
    if rc == 2:
        errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
        if len(errors) != 1:
            return f"exit 2 with {len(errors)} 'error:' lines (want exactly one)"
    return None


_BUILTIN_MEMO: dict[str, Any] = {}


def speed_up_builtin_catalog() -> None:
    """Parse the built-in catalog files once per process (they do not change between cases).

    Everything else (the user's files, merging, validation, the commands) runs as in production.
    """
    from advisor.catalog import loader

    if getattr(loader.parse_file, "_fuzz_memo", False):
        return
    original = loader.parse_file
    builtin = str(loader.builtin_catalog_dir())

    def parse_file(path, problems):
        key = str(path)
        if not key.startswith(builtin):
            return original(path, problems)
        if key not in _BUILTIN_MEMO:
            found: list = []
            _BUILTIN_MEMO[key] = (original(path, found), found)
        parsed, found = _BUILTIN_MEMO[key]
        problems.extend(found)
        return {k: list(v) for k, v in parsed.items()}

    parse_file._fuzz_memo = True  # type: ignore[attr-defined]
    loader.parse_file = parse_file


def _clear_process_caches() -> None:
    """Module-level caches keyed by path would hide a changed file between cases."""
    for name, mod in list(sys.modules.items()):
        if not (name == "advisor" or name.startswith("advisor.")) or mod is None:
            continue
        for attr in ("_CACHE", "_RAW"):
            obj = getattr(mod, attr, None)
            if isinstance(obj, dict):
                obj.clear()


@contextlib.contextmanager
def _alarm(seconds: float):
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise CaseTimeout(f"case ran past {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    # Re-fires every second: an exception raised where Python ignores it (a gc callback) is raised again.
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _fill(text: str, folder: Path) -> str:
    return text.replace("{dir}", str(folder))


def write_files(case: Case, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _direct(case: Case, folder: Path) -> tuple[int, str]:
    """Loaders without a command of their own: 0 accepted, 2 rejected cleanly; other errors propagate."""
    from advisor.errors import AdvisorError

    if case.direct == "policy":
        from advisor.check.policy import load_policy

        try:
            load_policy(folder / "policy.yaml")
            return 0, ""
        except AdvisorError as exc:
            return 2, f"error: {exc.one_line()}\n"
    if case.direct == "probe-cache":
        from advisor.estimate.schema import MeasuredRates
        from advisor.probe.api import CalibrationResult
        from advisor.probe.cache import ProbeCache

        _, key = probe_cache_base(case.argv[0])
        cache = ProbeCache(folder / "probes")
        target = cache.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(case.files["probe.json"])
        model = CalibrationResult if case.argv[0] == "calibration" else MeasuredRates
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hit = cache.load(key, model)
        if hit is None:
            return 2, "error: " + (" ".join(str(caught[0].message).split()) if caught else "cache miss") + "\n"
        return 0, ""
    raise AssertionError(case.direct)


def _depth() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def run_case(case: Case, folder: Path, *, timeout: float = CASE_TIMEOUT_S) -> Outcome:
    """Run one case in this process against the real CLI entry point, output captured."""
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    speed_up_builtin_catalog()
    write_files(case, folder)
    argv = [_fill(a, folder) for a in case.argv]
    env = {k: _fill(v, folder) for k, v in case.env.items()}
    env.setdefault("ADVISOR_REPORTS_DIR", str(folder / "reports"))
    env.setdefault("ADVISOR_CACHE_DIR", str(folder / "cache"))
    env.setdefault("ADVISOR_HARDWARE_FIXTURE", "")
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    dropped = ("ADVISOR_CATALOG_PATH", "ADVISOR_DEBUG", "GITHUB_STEP_SUMMARY")
    saved_env = {k: os.environ.get(k) for k in [*env, *dropped]}
    os.environ.update(env)
    for k in dropped:
        os.environ.pop(k, None)
    _clear_process_caches()
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    saved_showwarning = warnings.showwarning
    saved_stdin = sys.stdin
    rc: int | None = None
    start = time.perf_counter()
    crash = None
    saved_limit = sys.getrecursionlimit()
    try:
        # As in a fresh `advisor` process: 1000 frames above the entry point (the test runner's
        # own frames do not count; hypothesis raises the limit while it runs a test).
        sys.setrecursionlimit(_depth() + 1000)
        os.chdir(folder)
        sys.stdin = io.StringIO("")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _alarm(timeout), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            if case.direct:
                rc, text = _direct(case, folder)
                err.write(text)
            else:
                rc = run_cli(cli, argv, "advisor")
    except CaseTimeout as exc:
        crash = f"hang: {exc}"
    except SystemExit as exc:
        crash = f"SystemExit escaped run_cli: {exc.code!r}"
    except BaseException as exc:  # noqa: BLE001 - anything escaping is a crash
        if isinstance(exc, KeyboardInterrupt):
            raise
        import traceback

        crash = f"exception escaped: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        err.write(traceback.format_exc())
    finally:
        sys.setrecursionlimit(saved_limit)
        os.chdir(cwd)
        sys.stdin = saved_stdin
        warnings.showwarning = saved_showwarning
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    stdout, stderr = out.getvalue(), err.getvalue()
    return Outcome(rc, stdout, stderr, seconds, crash or classify(rc, stdout, stderr))


def run_case_subprocess(case: Case, folder: Path, *, timeout: float = 120) -> Outcome:
    """The same case through `python -m advisor` in a fresh process (the cross-check)."""
    import subprocess

    write_files(case, folder)
    if case.direct:  # no command: run the same loader call in a child interpreter
        code = ("import json, sys; from pathlib import Path; from tests.fuzzing import Case, _direct; "
                "c = json.loads(sys.argv[1]); folder = Path(sys.argv[2]); "
                "files = {n: (folder / n).read_bytes() for n in c['files']}; "
                "rc, text = _direct(Case(c['kind'], files, c['argv'], direct=c['direct']), folder); "
                "sys.stderr.write(text); sys.exit(rc)")
        cmd = [sys.executable, "-c", code, json.dumps({"kind": case.kind, "argv": case.argv, "direct": case.direct,
                                                       "files": sorted(case.files)}), str(folder)]
    else:
        cmd = [sys.executable, "-m", "advisor", *[_fill(a, folder) for a in case.argv]]
    env = dict(os.environ)
    for k in ("ADVISOR_CATALOG_PATH", "ADVISOR_DEBUG", "GITHUB_STEP_SUMMARY"):
        env.pop(k, None)
    env.update({"ADVISOR_REPORTS_DIR": str(folder / "reports"), "ADVISOR_CACHE_DIR": str(folder / "cache"),
                "ADVISOR_HARDWARE_FIXTURE": "", "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
                "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
    env.update({k: _fill(v, folder) for k, v in case.env.items()})
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, cwd=folder, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Outcome(None, "", "", time.perf_counter() - start, f"hang: ran past {timeout:g} s")
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    return Outcome(proc.returncode, stdout, stderr, time.perf_counter() - start,
                   classify(proc.returncode, stdout, stderr))


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

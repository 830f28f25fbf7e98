"""Security: safe YAML only, no pickle, no remote code, nothing fetched from a hub, credentials
never logged, file names from catalogs sanitised, and the run-context plugin never breaks a run.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import fuzzing
from tests.conftest import REPO, run_advisor

PACKAGE_DIRS = [REPO / "advisor", REPO / "plugins"]

# (file relative to the repo, rule) -> why it is allowed. Keep this empty unless a reviewer agrees.
ALLOWED: dict[tuple[str, str], str] = {}

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
FORBIDDEN_ATTRS = {
    ("yaml", "unsafe_load"), ("yaml", "unsafe_load_all"), ("yaml", "full_load"), ("yaml", "full_load_all"),
    ("yaml", "Loader"), ("yaml", "UnsafeLoader"), ("yaml", "FullLoader"), ("yaml", "CLoader"),
    ("yaml", "CUnsafeLoader"), ("yaml", "CFullLoader"), ("os", "system"), ("os", "popen"),
}
HUB_CALLS = {"hf_hub_download", "snapshot_download", "hf_hub_url", "HfApi", "cached_download", "list_repo_files"}


def _safe_loader_names(tree: ast.Module) -> set[str]:
    """Names usable as Loader=: yaml.SafeLoader/CSafeLoader and module classes that subclass SafeLoader."""
    names = {"SafeLoader", "CSafeLoader", "yaml.SafeLoader", "yaml.CSafeLoader"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(b) for b in node.bases}
            if bases & names:
                names.add(node.name)
    return names


def scan_source(source: str, filename: str = "<src>") -> list[tuple[int, str, str]]:
    """(line, rule, code) for every unsafe construct in one Python source."""
    tree = ast.parse(source, filename)
    safe_loaders = _safe_loader_names(tree)
    found: list[tuple[int, str, str]] = []
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def enclosing_function(node):
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return tree

    for node in ast.walk(tree):
        code = (ast.unparse(node)[:120] if isinstance(node, (ast.Call, ast.Import, ast.ImportFrom, ast.Attribute))
                else "")
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append((node.lineno, "pickle-like import", code))
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                found.append((node.lineno, "pickle-like import", code))
            if node.module == "yaml" and any(a.name in {n for _, n in FORBIDDEN_ATTRS} for a in node.names):
                found.append((node.lineno, "unsafe yaml loader", code))
            if any(a.name in HUB_CALLS for a in node.names):
                found.append((node.lineno, "hub download", code))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRS:
                found.append((node.lineno, f"{node.value.id}.{node.attr}", code))
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            if owner == "yaml" and fname in ("load", "load_all"):
                loader = kw.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
                if loader is None or ast.unparse(loader) not in safe_loaders:
                    found.append((node.lineno, "yaml.load without a SafeLoader", code))
            if owner == "torch" and fname == "load":
                w = kw.get("weights_only")
                if not (isinstance(w, ast.Constant) and w.value is True):
                    found.append((node.lineno, "torch.load without weights_only=True", code))
            if "trust_remote_code" in kw:
                v = kw["trust_remote_code"]
                if not (isinstance(v, ast.Constant) and v.value is False):
                    found.append((node.lineno, "trust_remote_code not literally False", code))
            if fname == "from_pretrained":
                fn_src = ast.unparse(enclosing_function(node))
                if ("local_files_only=True" not in fn_src.replace(" ", "")
                        and "'local_files_only':True" not in fn_src.replace(" ", "")):
                    found.append((node.lineno, "from_pretrained without local_files_only=True", code))
                if ("trust_remote_code=False" not in fn_src.replace(" ", "")
                        and "'trust_remote_code':False" not in fn_src.replace(" ", "")):
                    found.append((node.lineno, "from_pretrained without trust_remote_code=False", code))
            if fname in HUB_CALLS:
                found.append((node.lineno, "hub download", code))
            if isinstance(func, ast.Name) and func.id in ("eval", "exec", "compile", "__import__"):
                found.append((node.lineno, f"{func.id}()", code))
            if "shell" in kw and not (isinstance(kw["shell"], ast.Constant) and kw["shell"].value is False):
                found.append((node.lineno, "subprocess shell=True", code))
    # trust_remote_code=True hidden in a dict literal or dict(...) passed with **
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "trust_remote_code" and not (
                        isinstance(v, ast.Constant) and v.value is False):
                    found.append((node.lineno, "trust_remote_code not literally False", ast.unparse(node)[:120]))
    return found


def package_files() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in d.rglob("*.py"))


def test_the_package_has_no_unsafe_loading_remote_code_or_hub_downloads():
    problems = []
    for path in package_files():
        rel = str(path.relative_to(REPO))
        for line, rule, code in scan_source(path.read_text(encoding="utf-8"), rel):
            if (rel, rule) not in ALLOWED:
                problems.append(f"{rel}:{line}: {rule}: {code}")
    assert not problems, "unsafe constructs:\n" + "\n".join(problems)
    assert len(package_files()) > 20  # the scan really looked at the package


@pytest.mark.parametrize("source, rule", [
    ("import yaml\nyaml.load(text)", "yaml.load without a SafeLoader"),
    ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "yaml.Loader"),
    ("import yaml\nyaml.unsafe_load(text)", "yaml.unsafe_load"),
    ("from yaml import FullLoader", "unsafe yaml loader"),
    ("import pickle\npickle.loads(b'')", "pickle-like import"),
    ("from joblib import load", "pickle-like import"),
    ("import torch\ntorch.load('x.pt')", "torch.load without weights_only=True"),
    ("M.from_pretrained('x', trust_remote_code=True, local_files_only=True)", "trust_remote_code not literally False"),
    ("def f():\n    M.from_pretrained('Qwen/Qwen2.5-0.5B', trust_remote_code=False)",
     "from_pretrained without local_files_only=True"),
    ("kw = {'trust_remote_code': True}", "trust_remote_code not literally False"),
    ("from huggingface_hub import snapshot_download", "hub download"),
    ("eval(user_text)", "eval()"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "subprocess shell=True"),
])
def test_the_scanner_catches_each_unsafe_construct(source, rule):
    """Without these rules the package scan above would pass whatever was added."""
    assert rule in [r for _, r, _ in scan_source(source)]


def test_the_scanner_accepts_the_safe_forms():
    ok = ("import yaml\nclass L(yaml.SafeLoader): pass\nyaml.safe_load(t)\nyaml.load(t, Loader=L)\n"
          "yaml.load(t, Loader=yaml.SafeLoader)\n"
          "def f():\n    kw = dict(local_files_only=True, trust_remote_code=False)\n"
          "    M.from_pretrained(p, **kw)\nmodel.eval()\n")
    assert scan_source(ok) == []


def test_the_yaml_loader_is_a_safe_loader():
    from advisor import yamlio

    safe = (yaml.SafeLoader,) + ((yaml.CSafeLoader,) if hasattr(yaml, "CSafeLoader") else ())
    assert issubclass(yamlio._LineLoader, safe)
    # the constructor decides what a tag may build: the safe one, never Full/Unsafe
    assert issubclass(yamlio._LineLoader, yaml.constructor.SafeConstructor)
    assert not issubclass(yamlio._LineLoader, yaml.constructor.FullConstructor)


PWN = "!!python/object/apply:os.system ['touch {marker}']"


@pytest.mark.parametrize("kind, name, template", [
    ("catalog", "user.yaml", "models:\n  - id: x\n    name: {pwn}\n"),
    ("policy", "policy.yaml", "model: {pwn}\n"),
    ("recommend-config", "config.yaml", "task: {pwn}\n"),
])
def test_yaml_python_tags_never_run_code(kind, name, template, tmp_path):
    marker = tmp_path / "pwned"
    text = template.format(pwn=PWN.format(marker=marker)).encode()
    argv = {"catalog": ["catalog", "validate", "{dir}/user.yaml"],
            "policy": ["check", "--policy", "{dir}/policy.yaml", "--no-probe", "--no-mlflow"],
            "recommend-config": ["recommend", "--no-probe", "--no-mlflow", "--config", "{dir}/config.yaml"]}[kind]
    out = fuzzing.run_case(fuzzing.Case(kind, {name: text}, argv), tmp_path / "case")
    assert out.crash is None, out.crash
    assert out.rc in (1, 2)
    assert "python/object" in out.stderr or "constructor" in out.stderr.lower() or "tag" in out.stderr.lower()
    assert not marker.exists()


def test_probe_cache_files_are_json_never_unpickled(tmp_path):
    """A pickle planted where the cache file goes is ignored (and never executed)."""
    import pickle  # noqa: S403 - the test writes the hostile file; the package never imports pickle

    from advisor.estimate.schema import MeasuredRates
    from advisor.probe.cache import ProbeCache

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _, key = fuzzing.probe_cache_base("rates")
    cache = ProbeCache(tmp_path / "probes")
    cache.path_for(key).parent.mkdir(parents=True)
    cache.path_for(key).write_bytes(pickle.dumps(Evil()))
    with pytest.warns(UserWarning):
        assert cache.load(key, MeasuredRates) is None
    assert not marker.exists()


class _NoNetwork(Exception):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a network connection is recorded and refused."""
    attempts: list[str] = []

    def refuse(self, address, *a, **k):
        attempts.append(repr(address))
        raise _NoNetwork(f"network disabled in this test: {address!r}")

    def refuse_dns(host, *a, **k):
        attempts.append(f"dns {host}")
        raise socket.gaierror(f"network disabled in this test: {host}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return attempts


@pytest.mark.parametrize("argv", [
    ["catalog", "import-hf-config", str(fuzzing.FUZZ_FIXTURES / "hf" / "llama.json"), "--id", "my-llama"],
    ["catalog", "validate", str(fuzzing.FUZZ_FIXTURES / "catalog.yaml")],
    ["recommend", "--no-probe", "--no-mlflow", "--catalog", str(fuzzing.FUZZ_FIXTURES / "catalog.yaml"),
     "--task", "fuzz-task", "--target", "fuzz-gpu-24gb"],
    ["check", "--model-path", str(fuzzing.FUZZ_FIXTURES / "hf" / "qwen2.json"), "--target", "a10g-24gb",
     "--no-probe", "--no-mlflow"],
    ["profile", "--no-torch", "--json"],
])
def test_nothing_is_fetched_from_the_network(argv, no_network, tmp_path):
    """Catalog ids that look like hub repos, local config.json files, named targets: all offline."""
    out = fuzzing.run_case(fuzzing.Case("cli-args", {}, argv), tmp_path)
    assert out.crash is None, out.crash + out.stderr[-500:]
    assert out.rc in (0, 1), out.stderr[-500:]
    assert no_network == []


# --------------------------------------------------------------------------- credentials

# mlflow_server: the session fixture from tests/conftest.py (a real `mlflow server`, sqlite backend).

MARKER = "s3cr3t-" + uuid.uuid4().hex[:12]


def _everything_logged(uri: str, run_id: str, dest: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    parts = [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(run.data.metrics),
             json.dumps(run.info.to_proto().__str__())]
    for name in run.data.metrics:
        parts.append(json.dumps([m.to_proto().__str__() for m in client.get_metric_history(run_id, name)]))
    local = Path(client.download_artifacts(run_id, "", str(dest)))
    for p in local.rglob("*"):
        if p.is_file():
            parts.append(p.name)
            parts.append(p.read_bytes().decode("utf-8", "replace"))
    exp = client.get_experiment(run.info.experiment_id)
    parts.append(json.dumps(exp.tags))
    return "\n".join(parts)


def test_credentials_from_mlflow_env_vars_never_reach_the_run(mlflow_server, tmp_path):
    """The real CLI, a real server: password and token set to markers; neither may appear in any
    param, tag, metric, artifact, local report file, nor the command's output. The username is an
    identity, not a secret: MLflow records it as the run's user (mlflow.user / user_id) and nowhere else."""
    exp = f"creds-{uuid.uuid4().hex[:8]}"
    reports = tmp_path / "reports"
    user = f"user-{uuid.uuid4().hex[:10]}"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_TRACKING_USERNAME": user,
           "MLFLOW_TRACKING_PASSWORD": MARKER, "MLFLOW_TRACKING_TOKEN": f"tok-{MARKER}",
           "ADVISOR_REPORTS_DIR": str(reports), "ADVISOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_advisor("recommend", "--no-probe", "--target", "a10g-24gb", "--task", "summarization",
                       "--experiment", exp, env=env, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    import re

    run_id = re.search(r"run ([0-9a-f]{32})", proc.stderr).group(1)
    blob = _everything_logged(mlflow_server.uri, run_id, tmp_path / "dl")
    blob += proc.stdout + proc.stderr
    blob += "".join(p.read_bytes().decode("utf-8", "replace") for p in reports.rglob("*") if p.is_file())
    leaks = [blob[max(0, i - 160):i + 40] for i in _find_all(blob, MARKER)]
    assert not leaks, "credential marker logged:\n" + "\n---\n".join(leaks[:5])
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=mlflow_server.uri).get_run(run_id)
    assert {k for k, v in run.data.tags.items() if user in v} <= {"mlflow.user"}
    assert not [k for k, v in run.data.params.items() if user in v]
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert files and all(user not in p.read_bytes().decode("utf-8", "replace") for p in files)


def _find_all(text: str, needle: str) -> list[int]:
    out, i = [], text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def test_credentials_in_the_tracking_uri_are_never_shown_or_stored(tmp_path):
    """An unreachable server with user:password@ in the URI: the exit-3 message and the kept report
    name the server without the password."""
    from tests.mlflow_server import closed_port_uri

    uri = closed_port_uri().replace("http://", f"http://alice:{MARKER}@")
    reports = tmp_path / "reports"
    proc = run_advisor("recommend", "--no-probe", "--target", "a10g-24gb", "--task", "summarization",
                       "--tracking-uri", uri, env={"ADVISOR_REPORTS_DIR": str(reports),
                                                   "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert MARKER not in proc.stdout + proc.stderr
    kept = [p for p in reports.rglob("*") if p.is_file()]
    assert kept, "the report must be kept on disk"
    assert all(MARKER not in p.read_bytes().decode("utf-8", "replace") for p in kept)


# --------------------------------------------------------------------------- file names

@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.text(max_size=200), st.sampled_from([
    "../../etc/passwd", "..", ".", "/", "//", "a/../../b", "..\\..\\windows", "C:\\x", "\x00", "con", "a\nb",
    "~/.ssh/id_rsa", "-rf", "x" * 1000, "models:/x/1", "Qwen/Qwen2.5-0.5B", "....//....//", ".hidden"])))
def test_the_tracking_sanitiser_always_gives_a_plain_file_name(name, tmp_path_factory):
    from advisor.tracking.outbox import safe_filename

    safe = safe_filename(name)
    assert safe and safe not in (".", "..")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe and "\n" not in safe
    assert not safe.startswith(".")  # no hidden files, no "." or ".." parts
    assert len(safe) <= 120
    assert Path(safe).name == safe
    base = Path("/reports/run")
    assert (base / safe).resolve().parent == base
    assert safe_filename(safe) == safe  # stable: a sanitised name is left alone


HOSTILE_CATALOG = """
targets:
  - id: "../../etc/passwd"
    name: "Evil target ../../"
    kind: gpu
    memory_gb: 24
    memory_bandwidth_gbs: 600
    peak_tflops: {fp32: 31, bf16: 125, fp16: 125}
    source: "https://example.org/test-only"
  - id: "..\\\\..\\\\boot.ini"
    name: "Evil target 2"
    kind: gpu
    memory_gb: 48
    memory_bandwidth_gbs: 900
    peak_tflops: {fp32: 60, bf16: 300, fp16: 300}
    source: "https://example.org/test-only"
tasks:
  - id: "../../tmp/evil-task"
    description: "a task whose id is a path"
    prompt_tokens: 512
    new_tokens: 64
    latency_budget_ms: 5000
    quality_proxy: {description: "PROXY", weights: {mmlu: 1.0}}
    generation: {temperature: 0.2, top_p: 0.9, max_new_tokens: 64, rationale: "x"}
"""


def test_ids_that_are_paths_never_become_paths(mlflow_server, tmp_path):
    """Model ids are validated lowercase, but target and task ids are free text in a user catalog:
    a recommendation for them must log artifacts and metrics under plain names only, and write
    nothing outside its own report folder."""
    cat = tmp_path / "cat" / "evil.yaml"
    cat.parent.mkdir()
    cat.write_text(HOSTILE_CATALOG)
    bad_id = tmp_path / "cat" / "models.yaml"
    bad_id.write_text("models:\n  - id: ../../etc/passwd\n    name: x\n")
    reports = tmp_path / "deep" / "er" / "reports"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "ADVISOR_REPORTS_DIR": str(reports),
           "ADVISOR_CACHE_DIR": str(tmp_path / "cache")}
    before = set(tmp_path.rglob("*"))
    rejected = run_advisor("catalog", "validate", str(bad_id), env=env, cwd=tmp_path)
    assert rejected.returncode == 2 and "lowercase id" in rejected.stderr
    proc = run_advisor("recommend", "--no-probe", "--catalog", str(cat), "--task", "../../tmp/evil-task",
                       "--target", "../../etc/passwd", "--target", "..\\..\\boot.ini",
                       "--experiment", f"paths-{uuid.uuid4().hex[:6]}", "--markdown", "out.md",
                       env=env, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    created = set(tmp_path.rglob("*")) - before
    outside = [p for p in created if not (p.is_relative_to(reports) or reports.is_relative_to(p)
                                          or p == tmp_path / "out.md" or p.is_relative_to(tmp_path / "cache"))]
    assert not outside, outside
    import re

    from mlflow import MlflowClient

    run_id = re.search(r"run ([0-9a-f]{32})", proc.stderr).group(1)
    client = MlflowClient(tracking_uri=mlflow_server.uri)

    def walk(path=""):
        for a in client.list_artifacts(run_id, path or None):
            yield a.path
            if a.is_dir:
                yield from walk(a.path)

    for path in walk():
        assert ".." not in Path(path).parts and not path.startswith("/") and "\\" not in path, path
    for name in client.get_run(run_id).data.metrics:
        assert ".." not in name.split("/") and "\\" not in name, name
    server_artifacts = mlflow_server.root / "artifacts"
    for p in server_artifacts.rglob("*"):
        assert p.resolve().is_relative_to(server_artifacts.resolve()), p


# --------------------------------------------------------------------------- the run-context plugin

def _start_run_with_fixture(tmp_path, monkeypatch, readout: dict) -> dict:
    import mlflow

    monkeypatch.chdir(tmp_path)   # a sqlite store puts artifacts under ./mlruns

    fixture = tmp_path / "hw.json"
    fixture.write_text(json.dumps(readout))
    monkeypatch.setenv("ADVISOR_HARDWARE_FIXTURE", str(fixture))
    import advisor.hardware.profile as prof

    prof._CACHE.clear()
    import advisor_plugins.run_context as rc

    monkeypatch.setattr(rc, "_cache", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'plugin.db'}")
    with mlflow.start_run() as run:      # the user's own run: must start whatever the hardware says
        mlflow.log_param("user_param", 1)
    return mlflow.MlflowClient().get_run(run.info.run_id).data.tags


@pytest.mark.parametrize("gpu_name", ["X" * 20000, "GPU\x00\x1b[2J" + "é" * 9000, "\ud7ff" * 3])
def test_the_run_context_plugin_cannot_break_a_users_run(gpu_name, tmp_path, monkeypatch):
    """A GPU whose NVML name is absurd (too long for an MLflow tag, control characters): the user's
    mlflow.start_run() still works and every tag fits MLflow's limits. (sqlite stores an over-long
    tag anyway; PostgreSQL and MySQL stores refuse a value over 8000 characters, and then the
    user's start_run fails: so the plugin must clip.)"""
    devices = [{"index": i, "name": f"{gpu_name}-{i}", "memory": {"total": 24 * 10**9, "free": 1, "used": 1}}
               for i in range(4)]
    tags = _start_run_with_fixture(tmp_path, monkeypatch, {"count": 4, "devices": devices, "driver": "1" * 9000})
    long = {k: len(v) for k, v in tags.items() if len(v) > 8000}
    assert not long, f"tags over MLflow's 8000-character limit: {long}"


def test_the_run_context_plugin_survives_detection_that_raises_anything(tmp_path, monkeypatch):
    import advisor.tracking.hardware_tags as ht

    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("even str() fails")

    def boom():
        raise Weird()

    monkeypatch.setattr(ht, "local_inventory_tags", boom)
    import mlflow

    import advisor_plugins.run_context as rc

    monkeypatch.setattr(rc, "_cache", None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'plugin2.db'}")
    with mlflow.start_run() as run:
        pass
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"

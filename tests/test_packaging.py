"""The wheel ships the package, the plugins (as advisor_plugins) and the catalog, and the installed
`advisor` command works from a plain, non-editable install, with and without extras.

The venvs come from tests/conftest.py (`plain_install`, `probe_install`: a wheel built once per
session, pip-installed into fresh venvs). Every command here runs the installed console script
from a scratch folder, never `python -m advisor` from the source tree: an editable install's import
hook imports modules (importlib.util) that a plain install does not, and hid a crash of every command.
"""

from __future__ import annotations

import ast
import json
import subprocess
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
# Full MLflow's dependencies that a CI gate does not need; none may come with a plain install.
HEAVY = {"mlflow", "pandas", "pyarrow", "scipy", "scikit-learn", "sqlalchemy", "alembic", "flask", "gunicorn",
         "matplotlib", "torch", "transformers"}
PLAIN_INSTALL_GOAL_MB = 350
NAMED_CHECK = ["check", "qwen2.5-3b", "--target", "a10g-24gb", "--task", "summarization"]


@pytest.fixture
def work(tmp_path) -> Path:
    """The working folder of an installed command (a CI job's checkout); reports go elsewhere (conftest)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "advisor").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"


def test_no_module_uses_importlib_util_without_importing_it():
    """`import importlib` does not bind importlib.util; only another module's import did, by luck."""
    offenders = []
    for root in ("advisor", "plugins", "catalog"):
        for path in (REPO / root).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                         for a in n.names}
            for sub in ("util", "metadata", "machinery"):
                used = any(isinstance(n, ast.Attribute) and n.attr == sub and isinstance(n.value, ast.Name)
                           and n.value.id == "importlib" for n in ast.walk(tree))
                if used and f"importlib.{sub}" not in imported:
                    offenders.append(f"{path.relative_to(REPO)}: importlib.{sub}")
    assert not offenders, offenders


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
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("mlflow-skinny") for r in core), core
    assert not any(r.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower() == "mlflow"
                   for r in core), f"full mlflow belongs in the 'mlflow' extra: {core}"
    assert any(r.startswith("mlflow") and 'extra == "mlflow"' in r for r in requires), requires


# --- the plain install: no extras, no -e ------------------------------------------------------------

def test_plain_install_is_light(plain_install):
    dists = plain_install.distributions()
    assert "model-advisor" in dists and "mlflow-skinny" in dists
    assert not dists & HEAVY, f"a plain install pulls {sorted(dists & HEAVY)}"
    size = plain_install.size_mb()
    assert size <= PLAIN_INSTALL_GOAL_MB, f"plain install is {size:.0f} MB (goal <= {PLAIN_INSTALL_GOAL_MB} MB)"


def test_installed_script_runs_from_site_packages(plain_install, work):
    """The console script is the venv's, and imports the installed package, not this source tree."""
    assert plain_install.advisor_exe.read_text().splitlines()[0] == f"#!{plain_install.python}"
    r = subprocess.run([str(plain_install.python), "-c", "import advisor, advisor.catalog.loader as l; "
                        "print(advisor.__file__); print(l.builtin_catalog_dir())"],
                       capture_output=True, text=True, cwd=work, env=plain_install.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert all(line.startswith(str(plain_install.root)) for line in r.stdout.split()), r.stdout


def test_plain_install_help(plain_install, work):
    r = plain_install.advisor("--help", cwd=work)
    assert r.returncode == 0, r.stderr
    for command in ("profile", "catalog", "estimate", "recommend", "check", "log", "compare"):
        assert f"  {command} " in r.stdout, f"{command} missing from --help:\n{r.stdout}"
    assert "70 internal error" in " ".join(r.stdout.split())
    r = plain_install.advisor("check", "--help", cwd=work)
    assert r.returncode == 0 and "--tracking-uri" in r.stdout, r.stderr


def test_plain_install_profile_json(plain_install, work):
    r = plain_install.advisor("profile", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    profile = json.loads(r.stdout)
    assert profile["torch"]["installed"] is False      # no probe extra: torch is not there
    assert profile["cpu"]["logical_cores"] >= 1


def test_plain_install_catalog_list_and_validate(plain_install, work):
    r = plain_install.advisor("catalog", "list", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "qwen2.5-0.5b" in {m["id"] for m in json.loads(r.stdout)["models"]}
    shipped = plain_install.root / "lib"
    [catalog_dir] = shipped.glob("python3*/site-packages/advisor_catalog")
    r = plain_install.advisor("catalog", "validate", str(catalog_dir), cwd=work)
    assert r.returncode == 0 and "valid" in r.stdout, r.stderr


def test_plain_install_estimate(plain_install, work):
    r = plain_install.advisor("estimate", "qwen2.5-3b", "--target", "a10g-24gb", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["memory"]["basis"] == "spec"


def test_plain_install_models_llama_cpp_q4_0_repacking_on_an_avx2_cpu(plain_install, work):
    # the installed console script: the default llama.cpp build repacks Q4_0 on AVX2 (decode FLOPs x 1.09,
    # catalog/runtimes.yaml cpu.repack); llama.cpp@2024-09 predates it and names itself
    fixture = {"ADVISOR_HARDWARE_FIXTURE": str(REPO / "tests" / "fixtures" / "hardware" / "cpu-16gb.json")}
    out = {}
    for rt in ("llama.cpp", "llama.cpp@2024-09"):
        r = plain_install.advisor("estimate", "llama-3.2-1b", "--target", "local", "--runtime", rt, "--format",
                                  "q4_0", "--no-probe", "--json", cwd=work, env=fixture)
        assert r.returncode == 0, r.stderr
        out[rt] = json.loads(r.stdout)
    new, old = out["llama.cpp"], out["llama.cpp@2024-09"]
    assert "no runtime repacking" in old["runtime_version"] and "Q4_0 repacked" in new["runtime_version"]
    ratio = old["latency"]["terms"]["decode_compute_ms"] / new["latency"]["terms"]["decode_compute_ms"]
    assert ratio == pytest.approx(1.09, rel=1e-6)
    assert new["latency"]["prefill_ms"] < old["latency"]["prefill_ms"]


def test_plain_install_probe_says_what_to_install(plain_install, work):
    r = plain_install.advisor("probe", "qwen2.5-0.5b", cwd=work)
    assert (r.returncode == 2
            and r.stderr.strip() == "error: torch is not installed (pip install 'model-advisor[probe]')")


def test_plain_install_probe_engine_says_what_to_install(plain_install, work):
    # the lazily loaded command imports its module only when run: this is where an import bug would show
    r = plain_install.advisor("probe-engine", "qwen2.5-0.5b", "--format", "q4_k_m", cwd=work)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().startswith("error: the llama.cpp engine probe needs llama-cpp-python and gguf: "
                                       "pip install 'model-advisor[engine]'"), r.stderr
    r = plain_install.advisor("--help", cwd=work)
    assert "probe-engine" in r.stdout


def test_plain_install_check_named_target_writes_junit_and_no_mlflow_files(plain_install, work):
    junit = work / "junit.xml"
    started = time.monotonic()
    r = plain_install.advisor(*NAMED_CHECK, "--junit", str(junit), cwd=work)
    wall = time.monotonic() - started
    plain_install.measured["check"] = (f"`advisor {' '.join(NAMED_CHECK)} --junit` in the plain install, no MLflow: "
                                       f"{wall:.2f} s wall (goal <= 2 s; benchmarks/install_size.py takes the median)")
    assert r.returncode in (0, 1), r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert ("PASSED" if r.returncode == 0 else "FAILED") in r.stdout
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) >= 2
    assert "MLflow: not logged (no tracking URI" in r.stdout
    assert sorted(p.name for p in work.iterdir()) == ["junit.xml"], "a gate leaves only what it was asked for"


def test_plain_install_says_what_to_install_for_the_sqlite_store(plain_install, work):
    r = plain_install.advisor(*NAMED_CHECK, "--mlflow", cwd=work)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the MLflow store sqlite:///mlflow.db needs full MLflow")
    assert "pip install 'model-advisor[mlflow]'" in lines[0]
    assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()
    r = plain_install.advisor("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe",
                              cwd=work)
    assert r.returncode == 2 and "pip install 'model-advisor[mlflow]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = plain_install.advisor("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe",
                              "--no-mlflow", "--plot", str(work / "p.png"), cwd=work)
    assert r.returncode == 2 and "--plot needs matplotlib" in r.stderr, r.stderr


def test_plain_install_logs_a_check_and_a_recommendation_over_http(plain_install, mlflow_server, work):
    """mlflow-skinny is enough for a tracking server: the gate's run, and recommend's table without pandas."""
    from mlflow import MlflowClient

    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri}
    r = plain_install.advisor(*NAMED_CHECK, "--experiment", "plain-install-gate", cwd=work, env=env)
    assert r.returncode in (0, 1), r.stderr
    assert "MLflow: logged as run " in r.stdout and mlflow_server.uri in r.stdout, r.stdout
    client = MlflowClient(tracking_uri=mlflow_server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("plain-install-gate").experiment_id])
    assert run.data.tags["advisor.kind"] == "check" and run.data.tags["advisor.complete"] == "true"

    r = plain_install.advisor("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe",
                              "--experiment", "plain-install-recommend", cwd=work, env=env)
    assert r.returncode in (0, 1), r.stderr
    assert "matplotlib is not installed" in r.stderr
    [run] = client.search_runs([client.get_experiment_by_name("plain-install-recommend").experiment_id])
    assert run.data.tags["advisor.complete"] == "true"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recommendation.json", "candidates.json", "report.md"} <= names and "pareto.png" not in names
    dl = work.parent / "downloaded"
    dl.mkdir()
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "candidates.json", str(dl))).read_text())
    from advisor.tracking.recommendation_run import TABLE_COLUMNS

    assert tuple(table["columns"][:len(TABLE_COLUMNS)]) == TABLE_COLUMNS and table["data"]
    roles = [row[table["columns"].index("pick")] for row in table["data"]]
    assert sum(r.startswith("pick") for r in roles) == 1, roles[:5]   # the pick's row is marked, once
    assert {"path": "candidates.json", "type": "table"} in json.loads(run.data.tags["mlflow.loggedArtifacts"])
    r = plain_install.advisor("compare", "--experiment", "plain-install-recommend", "--json", cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["task"] == "summarization" and row["pick"]
    r = plain_install.advisor("log", "--all", cwd=work, env=env)
    assert r.returncode == 0 and "nothing to send" in r.stdout + r.stderr, r.stderr
    assert not any(work.iterdir()), "logging to a server leaves nothing in the working folder"


def test_plain_install_internal_error_has_its_own_exit_code(plain_install, work):
    """A bug (here: a command module that raises) exits 70 with one line, not 1 ("a check failed")."""
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import advisor.cli.app as app\n"
        "app.COMMANDS['profile'] = ('boom_cmd', 'profile', 'raises')\n")
    (hook / "boom_cmd.py").write_text(
        "import click\n\n@click.command()\ndef profile():\n    raise KeyError('injected bug')\n")
    env = {"PYTHONPATH": str(hook)}
    r = plain_install.advisor("profile", cwd=work, env=env)
    assert r.returncode == 70, (r.returncode, r.stderr)
    assert r.stderr.strip().splitlines() == [
        "error: internal error: KeyError: 'injected bug' (set ADVISOR_DEBUG=1 for the traceback)"]
    r = plain_install.advisor("profile", cwd=work, env={**env, "ADVISOR_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr and "injected bug" in r.stderr


# --- with the probe extra ------------------------------------------------------------------------------

def test_probe_install_runs_the_installed_script_with_torch(probe_install, work):
    dists = probe_install.distributions()
    assert "torch" in dists and "mlflow" not in dists and "pandas" not in dists
    r = probe_install.advisor("--help", cwd=work)
    assert r.returncode == 0 and "  probe " in r.stdout, r.stderr
    r = probe_install.advisor("profile", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["torch"]["installed"] is True
    r = probe_install.advisor("catalog", "list", "--json", cwd=work)
    assert r.returncode == 0 and "qwen2.5-0.5b" in r.stdout, r.stderr
    junit = work / "junit.xml"
    r = probe_install.advisor(*NAMED_CHECK, "--junit", str(junit), cwd=work)
    assert r.returncode in (0, 1) and "internal error" not in r.stderr, r.stderr
    assert ET.parse(junit).getroot().tag == "testsuites"
    assert sorted(p.name for p in work.iterdir()) == ["junit.xml"]


def test_ci_installs_exactly_what_the_readme_says():
    readme = (REPO / "README.md").read_text()
    setup = readme[readme.index("## Set up and run the main job"):]
    start = setup.index("```bash\n") + len("```bash\n")
    command = setup[start:setup.index("\n```", start)]
    readme_install = command.split(" && ")[2]
    assert readme_install.startswith("pip install ") and "[mlflow," in readme_install
    ci = (REPO / ".ci" / "run").read_text()
    assert f"python -m {readme_install}".replace("pip install ", "pip install -q ") in ci, readme_install

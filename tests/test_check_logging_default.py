"""`advisor check` logs to MLflow only when a tracking URI is given (or --mlflow), says so in its
summary, and never leaves mlflow.db or mlruns/ in the working folder (a gate runs in the user's
repository). `recommend` keeps the embedded default. Runs the CLI in-process from a scratch cwd.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CHECK = Path(__file__).parent / "fixtures" / "check"
GATE = ["check", "gate-small", "--target", "gate-gpu-24gb", "--catalog", str(CHECK / "catalog.yaml"),
        "--max-latency-ms", "600000"]


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A checkout-like working folder and no tracking URI in the environment."""
    folder = tmp_path / "repo"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return folder


def advisor(capsys, *args: str) -> tuple[int, str, str]:
    from advisor.cli.app import cli
    from advisor.cli.guard import run_cli

    code = run_cli(cli, list(args), prog_name="advisor")
    out = capsys.readouterr()
    return code, out.out, out.err


def runs_in(uri: str, experiment: str = "model-advisor"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_no_tracking_uri_logs_nothing_and_says_so(capsys, work, tmp_path):
    code, out, err = advisor(capsys, *GATE, "--junit", "junit.xml")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == ("MLflow: not logged (no tracking URI; give --tracking-uri or "
                                            "MLFLOW_TRACKING_URI to log)")
    assert sorted(p.name for p in work.iterdir()) == ["junit.xml"]
    assert not (tmp_path / "reports").exists(), "nothing to send later, so no report kept"


def test_json_output_stays_json_and_the_summary_says_not_logged(capsys, work):
    code, out, err = advisor(capsys, *GATE, "--json")
    assert code == 0 and json.loads(out)["status"] == "pass"
    assert "MLflow: not logged" in err and "MLflow" not in out
    assert not any(work.iterdir())


def test_env_tracking_uri_logs_there_and_not_in_the_working_folder(capsys, work, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    code, out, err = advisor(capsys, *GATE, "--experiment", "default-by-env")
    assert code == 0, err
    [run] = runs_in(mlflow_server.uri, "default-by-env")
    assert f"MLflow: logged as run {run.info.run_id} at {mlflow_server.uri}, experiment default-by-env" in out
    assert run.data.tags["advisor.kind"] == "check" and run.data.tags["advisor.complete"] == "true"
    assert not any(work.iterdir())


def test_tracking_uri_flag_and_policy_uri_turn_logging_on(capsys, work, tmp_path, mlflow_server):
    code, out, _ = advisor(capsys, *GATE, "--tracking-uri", mlflow_server.uri, "--experiment", "default-by-flag")
    assert code == 0 and len(runs_in(mlflow_server.uri, "default-by-flag")) == 1 and "MLflow: logged as run" in out
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"mlflow: {{tracking_uri: '{mlflow_server.uri}', experiment: default-by-policy}}\n")
    code, out, _ = advisor(capsys, *GATE, "--policy", str(policy))
    assert code == 0 and len(runs_in(mlflow_server.uri, "default-by-policy")) == 1 and "MLflow: logged as run" in out
    assert not any(work.iterdir())


def test_no_mlflow_and_enabled_false_win_over_a_uri(capsys, work, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'unused.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code, out, _ = advisor(capsys, *GATE, "--no-mlflow")
    assert code == 0 and "MLflow: not logged (logging is off: --no-mlflow or mlflow.enabled: false)" in out
    policy = tmp_path / "off.yaml"
    policy.write_text("mlflow: {enabled: false}\n")
    code, out, _ = advisor(capsys, *GATE, "--policy", str(policy))
    assert code == 0 and "MLflow: not logged (logging is off" in out
    assert not (tmp_path / "unused.db").exists() and not any(work.iterdir())


def test_mlflow_flag_without_uri_uses_the_embedded_store_here(advisor_cli, work):
    # a subprocess: MLflow caches its store per URI, and this relative one means "here"
    proc = advisor_cli(*GATE, "--mlflow", cwd=work, env={"MLFLOW_TRACKING_URI": ""})
    assert proc.returncode == 0, proc.stderr
    assert (work / "mlflow.db").is_file()                     # asked for: the embedded default
    [run] = runs_in(f"sqlite:///{work / 'mlflow.db'}")
    assert f"logged as run {run.info.run_id} at sqlite:///mlflow.db" in proc.stdout


def test_registry_model_without_uri_is_a_usage_error(capsys, work):
    code, _, err = advisor(capsys, "check", "--model-uri", "models:/summarizer/1", "--target", "gate-gpu-24gb",
                           "--catalog", str(CHECK / "catalog.yaml"))
    assert code == 2
    assert err.strip().splitlines() == ["error: models:/summarizer/1 is read from an MLflow registry, and no tracking "
                                        "URI is given (pass --tracking-uri URI or set MLFLOW_TRACKING_URI)"]
    code, _, err = advisor(capsys, "check", "--model-uri", "models:/summarizer/1", "--target", "gate-gpu-24gb",
                           "--catalog", str(CHECK / "catalog.yaml"), "--set-alias-on-pass", "champion")
    assert code == 2 and "--set-alias-on-pass needs MLflow logging" in err
    assert not any(work.iterdir())


def test_explain_shows_the_logging_default(capsys, work):
    import yaml

    code, out, _ = advisor(capsys, *GATE, "--explain")
    assert code == 0 and "enabled" not in yaml.safe_load(out).get("mlflow", {})   # unset: URI decides
    code, out, _ = advisor(capsys, *GATE, "--mlflow", "--explain")
    assert yaml.safe_load(out)["mlflow"]["enabled"] is True


def test_recommend_keeps_the_embedded_default(advisor_cli, work):
    proc = advisor_cli("recommend", "--task", "summarization", "--target", "gate-gpu-24gb",
                       "--catalog", str(CHECK / "catalog.yaml"), "--no-probe", cwd=work,
                       env={"MLFLOW_TRACKING_URI": ""})
    assert proc.returncode in (0, 1), proc.stderr
    assert (work / "mlflow.db").is_file() and len(runs_in(f"sqlite:///{work / 'mlflow.db'}")) == 1

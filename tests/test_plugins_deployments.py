"""The `advisor-gate` deployment target: found by MLflow, and it refuses when the check fails."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_context(monkeypatch):
    monkeypatch.setenv("ADVISOR_RUN_CONTEXT", "0")


def test_get_deploy_client_returns_the_gate():
    from mlflow.deployments import get_deploy_client

    client = get_deploy_client("advisor-gate:/sagemaker")
    assert type(client).__name__ == "AdvisorGateClient" and client.delegate_uri == "sagemaker"


def test_a_check_that_cannot_run_refuses_before_the_real_target(tmp_path):
    from mlflow.deployments import get_deploy_client
    from mlflow.exceptions import MlflowException

    client = get_deploy_client("advisor-gate:/no-such-target")
    with pytest.raises(MlflowException, match="advisor-gate: the check could not run.*refusing"):
        client.create_deployment("svc", "models:/does-not-exist/1",
                                 config={"advisor.policy": str(tmp_path / "missing-policy.yaml")})


def test_a_failing_check_refuses(tmp_path):
    from mlflow.deployments import get_deploy_client
    from mlflow.exceptions import MlflowException

    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama", "hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64,'
                   ' "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 128256}')
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"model_path: {cfg}\ntargets:\n  - id: t4-16gb\n")
    client = get_deploy_client("advisor-gate:/no-such-target")
    with pytest.raises(MlflowException, match="advisor-gate: check failed"):
        client.update_deployment("svc", "runs:/abc/model", config={"advisor.policy": str(policy)})


def test_split_config_keeps_advisor_keys_away_from_the_real_target():
    from advisor_plugins.deployments import split_config

    ours, theirs = split_config({"advisor.policy": "p.yaml", "advisor.targets": "t4-16gb", "instance_type": "x"})
    assert ours == {"policy": "p.yaml", "targets": "t4-16gb"} and theirs == {"instance_type": "x"}

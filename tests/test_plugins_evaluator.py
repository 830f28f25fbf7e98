"""mlflow.models.evaluate(..., evaluators=["advisor"]) on a small logged pyfunc model."""

from __future__ import annotations

import json
import time
import warnings

import pytest

LLAMA_CONFIG = {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 22, "num_attention_heads": 32,
                "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000,
                "max_position_embeddings": 2048, "architectures": ["LlamaForCausalLM"]}


@pytest.fixture(scope="module")
def logged_model(tmp_path_factory):
    """A pyfunc model (sleeps 2 ms per call) carrying a transformers config.json as an artifact."""
    import mlflow

    root = tmp_path_factory.mktemp("evaluator")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    hf = root / "hf-model"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(LLAMA_CONFIG))

    with warnings.catch_warnings():   # MLflow nags about type hints on predict
        warnings.simplefilter("ignore", UserWarning)

        class Slow(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                time.sleep(0.002)
                return [len(str(t)) for t in model_input["text"]]

        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name="m", python_model=Slow(), artifacts={"hf": str(hf)},
                                               pip_requirements=[])
        finally:
            mlflow.set_tracking_uri(None)
    return uri, info.model_uri


@pytest.fixture(autouse=True)
def store(logged_model, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged_model[0])
    monkeypatch.setenv("ADVISOR_RUN_CONTEXT", "0")


def test_evaluate_by_name_times_the_model_and_estimates_fit(logged_model):
    import mlflow
    import pandas as pd

    data = pd.DataFrame({"text": ["short", "a longer prompt", "x" * 50, "four"]})
    result = mlflow.models.evaluate(logged_model[1], data, model_type="text", evaluators=["advisor"],
                                    evaluator_config={"advisor": {"targets": ["a10g-24gb", "no-such-gpu"],
                                                                 "repeats": 3}})
    m = result.metrics
    assert m["advisor/rows"] == 4
    assert 2.0 <= m["advisor/latency_row_p50_ms"] <= m["advisor/latency_row_p95_ms"]
    assert m["advisor/latency_batch_p50_ms"] >= 2.0 and m["advisor/first_call_ms"] >= 2.0
    assert 0 < m["advisor/rows_per_s"] <= 4 / 0.002
    assert m["advisor/predict_peak_mb"] >= 0 and m["advisor/peak_rss_mb"] > 10
    # the config.json artifact -> a spec estimate on the named target (1.1B llama fits a 24 GB A10G)
    assert m["advisor/a10g-24gb/fits"] == 1.0 and 1.5 < m["advisor/a10g-24gb/memory_gb"] < 6
    assert m["advisor/a10g-24gb/e2e_p95_ms"] > 0 and m["advisor/a10g-24gb/tokens_per_s"] > 0
    assert not any(k.startswith("advisor/no-such-gpu") for k in m)

    logged = mlflow.MlflowClient().get_run(result._run_id).data.metrics
    assert logged["advisor/latency_row_p95_ms"] == m["advisor/latency_row_p95_ms"]
    report = result.artifacts["advisor_evaluation"].content
    assert report["fit"]["source"] == "artifact 'hf'" and "UnknownIdError" in report["fit"]["no-such-gpu"]["error"]
    assert report["timing"]["row_ms"]["n"] == 12


def test_not_chosen_by_mlflow_auto_discovery():
    from mlflow.models.evaluation.base import resolve_evaluators_and_configs

    auto = [b.name for b in resolve_evaluators_and_configs(None, None, "regressor")]
    assert "advisor" not in auto and auto          # the built-ins still are
    named = resolve_evaluators_and_configs(["advisor"], None, "text")
    assert [b.name for b in named] == ["advisor"]

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
    # a target that could not be estimated is in the metrics and the run's notes, not only in evaluation.json
    assert m["advisor/fit_estimated"] == 1.0 and m["advisor/fit_targets_failed"] == 1.0
    run = mlflow.MlflowClient().get_run(result._run_id)
    assert "fit on no-such-gpu not estimated: UnknownIdError" in run.data.tags["advisor.evaluation.notes"]
    assert run.data.params["advisor.targets"] == "a10g-24gb,no-such-gpu" and run.data.params["advisor.repeats"] == "3"


def test_without_a_config_json_the_missing_fit_is_reported(logged_model):
    """Issue 18: the evaluator's settings are params; a missing config.json is in the returned metrics
    and the run's notes."""
    import mlflow
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)

        class Echo(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input, params=None):
                return [len(str(t)) for t in model_input["text"]]

        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="plain", python_model=Echo(), pip_requirements=[])
    result = mlflow.models.evaluate(info.model_uri, pd.DataFrame({"text": ["a", "bb"]}), model_type="text",
                                    evaluators=["advisor"],
                                    evaluator_config={"advisor": {"targets": ["a10g-24gb"], "repeats": 2}})
    assert result.metrics["advisor/fit_estimated"] == 0.0
    assert not any(k.startswith("advisor/a10g-24gb/") for k in result.metrics)
    report = result.artifacts["advisor_evaluation"].content
    assert report["notes"] and "no transformers config.json" in report["notes"][0]
    run = mlflow.MlflowClient().get_run(result._run_id)
    assert run.data.params["advisor.repeats"] == "2" and run.data.params["advisor.format"] == "bf16"
    assert run.data.params["advisor.max_rows"] == "32" and run.data.params["advisor.targets"] == "a10g-24gb"
    assert "targets a10g-24gb were not checked" in run.data.tags["advisor.evaluation.notes"]


def test_the_memory_figure_sees_torch_tensors():
    """tracemalloc read 0.07 MB for a torch model: the figure is the process's resident growth."""
    torch = pytest.importorskip("torch")

    from advisor.tracking.evaluation import time_predict

    def predict(rows):
        x = torch.ones(len(rows) * 4_000_000)        # 16 MB of float32 per row, touched
        return float(x.sum())

    out = time_predict(predict, list(range(4)), warmup=0, repeats=1, max_rows=4)["metrics"]
    assert out["predict_peak_mb"] >= 0.9 * 64, out       # the 4-row batch call holds 64 MB at once
    assert "python_peak_mb" not in out


def test_not_chosen_by_mlflow_auto_discovery():
    from mlflow.models.evaluation.base import resolve_evaluators_and_configs

    auto = [b.name for b in resolve_evaluators_and_configs(None, None, "regressor")]
    assert "advisor" not in auto and auto          # the built-ins still are
    named = resolve_evaluators_and_configs(["advisor"], None, "text")
    assert [b.name for b in named] == ["advisor"]

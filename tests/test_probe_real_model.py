"""The real-model probe on a tiny local transformers model folder (made in the test, no hub)."""

from __future__ import annotations

import json
import shutil
import weakref
from pathlib import Path

import pytest

from advisor.errors import UsageError
from advisor.probe import api
from advisor.probe.real_model import find_transformers_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=256)
    model = AutoModelForCausalLM.from_config(cfg)
    out = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    model.save_pretrained(out)
    return out


def test_real_model_probe_measures_ttft_decode_and_memory(tiny_model_dir):
    m = api.probe_real_model(model_path=str(tiny_model_dir), fmt="fp32", batch=2, prompt_tokens=24,
                             new_tokens=5, budget_s=60, device="cpu")
    assert m.method == "real-model" and m.model == str(tiny_model_dir)
    assert (m.batch, m.prompt_tokens, m.format, m.device) == (2, 24, "fp32", "cpu")
    assert m.decode_ms_per_token.n == 5 and m.prefill_ms.n >= 2
    assert 0 < m.decode_ms_per_token.min <= m.decode_ms_per_token.p50 <= m.decode_ms_per_token.p95
    assert m.peak_bytes is not None and m.peak_bytes >= 0


def test_real_model_is_freed_afterwards(tiny_model_dir, monkeypatch):
    from advisor.probe.real_model import RealModelProbe

    refs = []
    orig = RealModelProbe._load

    def load(self, st):
        model = orig(self, st)
        refs.append(weakref.ref(model))
        return model

    monkeypatch.setattr(RealModelProbe, "_load", load)
    api.probe_real_model(model_path=str(tiny_model_dir), prompt_tokens=8, new_tokens=3, device="cpu")
    # no gc.collect() here: the probe must have let go of (and collected) the model itself
    assert refs and refs[0]() is None


def test_real_model_oom_is_does_not_fit(tiny_model_dir, monkeypatch):
    from advisor.probe.base import DoesNotFit
    from advisor.probe.real_model import RealModelProbe

    def boom(self, st):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(RealModelProbe, "_load", boom)
    with pytest.raises(DoesNotFit, match="out of memory"):
        api.probe_real_model(model_path=str(tiny_model_dir), prompt_tokens=8, new_tokens=3, device="cpu")


def test_missing_or_empty_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        api.probe_real_model(model_path=str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="no transformers model folder"):
        api.probe_real_model(model_path=str(tmp_path))


def test_model_folder_is_found_inside_mlflow_artifacts(tiny_model_dir, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_model_dir, root / "model")
    (root / "components" / "tokenizer").mkdir(parents=True)
    (root / "components" / "tokenizer" / "config.json").write_text(json.dumps({"not": "a model"}))
    assert find_transformers_dir(root) == root / "model"


def test_remote_code_is_never_trusted(tiny_model_dir, tmp_path):
    """A config that asks for remote code is not executed: loading fails instead."""
    bad = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
    cfg["model_type"] = "evil-model-type"
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(Exception) as info:
        api.probe_real_model(model_path=str(bad), prompt_tokens=8, new_tokens=2, device="cpu")
    assert not isinstance(info.value, SystemExit)


@pytest.mark.slow
def test_mlflow_model_uri(tiny_model_dir):
    mlflow = pytest.importorskip("mlflow")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tiny_model_dir), artifact_path="model")
    client = mlflow.MlflowClient()
    client.create_registered_model("tiny-probe")
    client.create_model_version("tiny-probe", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("tiny-probe", "prod", "1")
    m = api.probe_real_model(model_uri="models:/tiny-probe/1", prompt_tokens=8, new_tokens=3, device="cpu")
    assert m.method == "real-model" and m.model == "models:/tiny-probe/1" and m.decode_ms_per_token.n == 3
    m = api.probe_real_model(model_uri="models:/tiny-probe@prod", prompt_tokens=8, new_tokens=2, device="cpu")
    assert m.decode_ms_per_token.n == 2
    with pytest.raises(UsageError, match="not found"):
        api.probe_real_model(model_uri="models:/no-such-model/3", prompt_tokens=8, new_tokens=2, device="cpu")


def test_bad_model_uri_is_a_usage_error():
    with pytest.raises(UsageError, match="not an MLflow model URI"):
        api.probe_real_model(model_uri="s3://bucket/model")

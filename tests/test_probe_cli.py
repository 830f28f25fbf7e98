"""`advisor probe`: table and JSON output, the cache flag, usage errors, the real-model path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.cli.app import cli
from advisor.cli.guard import run_cli

torch = pytest.importorskip("torch")
FIX = Path(__file__).parent / "fixtures" / "probe"
CAT = ["--catalog", str(FIX / "catalog.yaml")]
SMALL = ["--prompt-tokens", "16", "--new-tokens", "4"]


@pytest.fixture(autouse=True)
def canned_microprobes(monkeypatch):
    from advisor.estimate.schema import MeasuredRates

    monkeypatch.setattr("advisor.probe.micro.run_microprobes", lambda device, **kw: MeasuredRates(
        device=device, matmul_tflops={"fp32": 0.1}, bandwidth_gbs=20.0, step_overhead_ms=0.01))


def advisor(capsys, *args):
    rc = run_cli(cli, list(args), "advisor")
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_output_uses_the_estimate_schema_and_caches(capsys):
    from advisor.estimate.schema import LatencyMeasurement, MeasuredRates

    rc, out, err = advisor(capsys, "probe", "tiny-llama-test", *CAT, *SMALL, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert (doc["prompt_tokens"], doc["new_tokens"], doc["batch"], doc["format"]) == (16, 4, 1, "fp32")
    MeasuredRates.model_validate(doc["rates"])
    (res,) = doc["results"]
    m = LatencyMeasurement.model_validate(res["measurement"])
    assert m.method == "architecture-probe" and m.model == "tiny-llama-test" and m.prompt_tokens == 16
    assert res["from_cache"] is False and res["basis"] == "measured"

    rc, out, _ = advisor(capsys, "probe", "tiny-llama-test", *CAT, *SMALL, "--json")
    again = json.loads(out)["results"][0]
    assert again["from_cache"] is True and again["measurement"] == res["measurement"]

    rc, out, _ = advisor(capsys, "probe", "tiny-llama-test", *CAT, *SMALL, "--json", "--refresh")
    assert json.loads(out)["results"][0]["from_cache"] is False


def test_table_output(capsys):
    rc, out, err = advisor(capsys, "probe", "tiny-llama-test", *CAT, *SMALL)
    assert rc == 0, err
    assert "tiny-llama-test" in out and "architecture-probe" in out and "measured" in out
    assert "p50 / p95" in out and "probed in" in err


def test_exhausted_budget_reports_not_measured_and_exits_1(capsys, monkeypatch):
    monkeypatch.setattr("advisor.probe.base.Budget.exhausted", lambda self, reserve_s=0.0: True)
    rc, out, err = advisor(capsys, "probe", "tiny-llama-test", *CAT, *SMALL, "--json")
    res = json.loads(out)["results"][0]
    assert rc == 1 and res["measurement"] is None
    assert res["skipped"].startswith("budget exhausted")
    rc, out, err = advisor(capsys, "probe", "tiny-llama-test", *CAT, *SMALL)
    assert rc == 1 and "not measured: budget exhausted" in out


@pytest.mark.parametrize("args,needle", [
    (["probe"], "name a catalog model"),
    (["probe", "tiny-llama-test", "--target", "a10g-24gb"], "only on this machine"),
    (["probe", "no-such-model"], "unknown model"),
    (["probe", "--model-path", "/x", "--model-uri", "models:/a/1"], "only one of"),
])
def test_usage_errors_exit_2(capsys, args, needle):
    rc, out, err = advisor(capsys, *args, *CAT)
    assert rc == 2 and needle in err and out == ""


def test_real_model_path(capsys, tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=128)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "m")
    rc, out, err = advisor(capsys, "probe", "--model-path", str(tmp_path / "m"), *SMALL, "--json")
    assert rc == 0, err
    res = json.loads(out)["results"][0]
    assert res["method"] == "real-model" and res["measurement"]["decode_ms_per_token"]["n"] == 4
    assert res["measurement"]["peak_bytes"] is not None


@pytest.mark.slow
def test_cli_subprocess_end_to_end(advisor_cli):
    from advisor.probe.api import microprobe_rates

    microprobe_rates("cpu")       # canned rates into this test's cache: the subprocess reuses them
    r = advisor_cli("probe", "tiny-llama-test", *CAT, *SMALL, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"][0]["measurement"]["method"] == "architecture-probe"
    assert doc["rates"]["bandwidth_gbs"] == 20.0          # read from the cache written above

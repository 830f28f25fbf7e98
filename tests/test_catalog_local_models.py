"""Local models (--hf-cache, --models-dir), lineage, new catalog fields in the CLI, native formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_advisor

from advisor.catalog.loader import get_catalog, load_catalog
from advisor.catalog.localmodels import LocalSources, local_id, sources_from_options, with_local_models

FIX = Path(__file__).parent / "fixtures" / "catalog"
HF = FIX / "hf"
NEW = FIX / "new-architectures.yaml"


def _hub(tmp_path: Path) -> Path:
    """A Hugging Face cache: two real configs, a catalog model by its repo id, and a folder without config."""
    hub = tmp_path / "hub"
    for repo, fixture, rev in (("models--Qwen--Qwen3-30B-A3B", "qwen3-30b-a3b.json", "aaa"),
                               ("models--acme--gpt-oss-20b-support-ft", "gpt-oss-20b.json", "bbb")):
        snap = hub / repo / "snapshots" / rev
        snap.mkdir(parents=True)
        shutil.copy(HF / fixture, snap / "config.json")
        (hub / repo / "refs").mkdir()
        (hub / repo / "refs" / "main").write_text(rev)
    qwen = hub / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "ccc"
    qwen.mkdir(parents=True)
    (qwen / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "max_position_embeddings": 32768,
        "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768}))
    (hub / "models--acme--empty" / "snapshots" / "ddd").mkdir(parents=True)
    (hub / "datasets--acme--d").mkdir()
    return hub


def test_hf_cache_models_join_the_catalog(tmp_path):
    base = get_catalog()
    cat = with_local_models(base, LocalSources(hf_hubs=(str(_hub(tmp_path)),)))
    ft = cat.models["gpt-oss-20b-support-ft"]
    assert ft.family == "local" and ft.license == "unknown" and ft.benchmarks == []
    assert ft.params_total == 20_914_757_184 and ft.arch.model_type == "gpt_oss"
    assert "unscored" in ft.notes
    assert cat.model("acme/gpt-oss-20b-support-ft") is ft          # the repo id is an alias
    moe = cat.models["qwen3-30b-a3b"]
    assert moe.arch.num_local_experts == 128
    # a repo id that the catalog knows keeps that entry's licence and scores, with the local architecture
    known = cat.models["qwen2.5-0.5b"]
    assert known.benchmarks == base.models["qwen2.5-0.5b"].benchmarks and known.license == "apache-2.0"
    assert known.architecture_source.endswith("config.json")
    assert set(cat.user_model_ids()) >= {"gpt-oss-20b-support-ft", "qwen3-30b-a3b", "qwen2.5-0.5b"}
    assert any("models--acme--empty: no config.json" in n for n in cat.local_notes)
    assert "gpt-oss-20b-support-ft" not in base.models             # the cached built-in catalog is untouched


def test_bad_local_configs_are_one_note_each(tmp_path):
    root = tmp_path / "models"
    (root / "garbage").mkdir(parents=True)
    (root / "garbage" / "config.json").write_text("{not json")
    (root / "weird").mkdir()
    (root / "weird" / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": -1}))
    (root / "no-config").mkdir()
    (root / "org" / "tiny").mkdir(parents=True)
    (root / "org" / "tiny" / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 100, "quantization_config": {"quant_method": "awq", "bits": 4}}))
    cat = with_local_models(get_catalog(), LocalSources(model_dirs=(str(root),)))
    notes = "\n".join(cat.local_notes)
    assert "garbage: skipped, " in notes and "not valid JSON" in notes
    assert "weird: skipped" in notes and "hidden_size" in notes
    assert "no-config: no config.json (skipped)" in notes
    tiny = cat.models["tiny"]
    assert tiny.name == "org/tiny"
    if "awq" in cat.formats:     # the checkpoint's own format, when formats.yaml defines it
        assert tiny.formats == ["awq"] and not tiny.official_16bit
    else:
        assert tiny.formats == [] and "(awq) is not in formats.yaml" in tiny.notes


def test_options_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "h"))
    assert sources_from_options(True).hf_hubs == (str(tmp_path / "h"),)
    assert sources_from_options(False, env_value="1").hf_hubs == (str(tmp_path / "h"),)
    assert sources_from_options(False, env_value=str(tmp_path / "other")).hf_hubs == (str(tmp_path / "other"),)
    assert not sources_from_options(False, env_value="0")
    assert local_id("Qwen/Qwen2.5-7B-Instruct") == "qwen2.5-7b-instruct"
    assert local_id("x/Some Model!!") == "some-model"


def test_cli_hf_cache_env_and_models_dir(tmp_path):
    hub = _hub(tmp_path)
    r = run_advisor("catalog", "list", "--json", env={"ADVISOR_HF_CACHE": str(hub)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = {m["id"]: m for m in out["models"]}
    assert rows["gpt-oss-20b-support-ft"]["local"] and rows["qwen3-30b-a3b"]["moe"]
    assert any("no config.json" in n for n in out["notes"])
    r = run_advisor("catalog", "list", "--json", "--models-dir", str(hub / "models--Qwen--Qwen3-30B-A3B" / "snapshots"))
    assert r.returncode == 0, r.stderr
    assert "aaa" in {m["id"] for m in json.loads(r.stdout)["models"]}   # a folder named after its revision


def test_recommend_considers_local_models_only(tmp_path):
    root = tmp_path / "models"
    (root / "my-tiny-ft").mkdir(parents=True)
    shutil.copy(HF / "gpt2-config.json", root / "my-tiny-ft" / "config.json")
    r = run_advisor("recommend", "--task", "summarization", "--target", "a10g-24gb", "--no-probe", "--no-mlflow",
                    "--json", "--user-models-only", "--models-dir", str(root))
    assert r.returncode in (0, 1), r.stderr
    rec = json.loads(r.stdout)
    assert {c["model"] for c in rec["candidates"]} == {"my-tiny-ft"}
    assert all(c["quality_proxy"] is None for c in rec["candidates"])          # unscored: no catalog entry matches
    assert any("local model 'my-tiny-ft' (unscored)" in n for n in rec["notes"])


def test_lineage_old_and_new_shapes_and_filters(tmp_path):
    cat, problems, _ = load_catalog([str(NEW)], strict=False)
    assert problems == []
    mini = cat.models["llama-3.1-minitron-4b"].lineage
    assert (mini.derived_from, mini.method) == ("llama-3.1-8b", ["prune", "distill"])
    nano = cat.models["nemotron-nano-9b-v2-test"].lineage
    assert nano.method == ["prune", "distill"] and nano.derived_from == "nvidia/NVIDIA-Nemotron-Nano-12B-v2"
    (tmp_path / "old.yaml").write_text(
        "models:\n  - {id: d, name: d, family: f, params_total: 81912576, params_source: https://x.org/a,"
        " architecture: {n_embd: 768, n_layer: 6, n_head: 12, n_positions: 1024, vocab_size: 50257, model_type: gpt2},"
        " architecture_source: https://x.org/a, license: mit, license_source: https://x.org/l,"
        " lineage: {parent: gpt2, method: distilled, source: https://arxiv.org/abs/1910.01108}}\n"
        "  - {id: e, name: e, family: f, params_total: 81912576, params_source: https://x.org/a,"
        " architecture: {n_embd: 768, n_layer: 6, n_head: 12, n_positions: 1024, vocab_size: 50257, model_type: gpt2},"
        " architecture_source: https://x.org/a, license: mit, license_source: https://x.org/l,"
        " lineage: {derived_from: gtp2, method: distill, source: https://arxiv.org/abs/1910.01108}}\n")
    cat2, problems, _ = load_catalog([str(tmp_path / "old.yaml")], strict=False)
    assert cat2.models["d"].lineage.derived_from == "gpt2" and cat2.models["d"].lineage.method == ["distill"]
    assert any("'gtp2' is not a catalog id" in str(p) and "did you mean" in str(p) for p in problems)
    r = run_advisor("catalog", "list", "--json", "--lineage", "prune", "--catalog", str(NEW))
    assert {m["id"] for m in json.loads(r.stdout)["models"]} == {"llama-3.1-minitron-4b", "nemotron-nano-9b-v2-test",
                                                                   "nemotron-nano-9b-v2"}   # the built-in one too
    r = run_advisor("catalog", "list", "--json", "--derived-from", "Meta-Llama/Llama-3.1-8B")
    ids = {m["id"] for m in json.loads(r.stdout)["models"]}
    assert "llama-3.1-minitron-4b" in ids and "distilgpt2" not in ids


def test_show_json_exposes_the_new_fields():
    r = run_advisor("catalog", "show", "gemma-3-4b-test", "--json", "--catalog", str(NEW))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["params_vision"] == 419_816_304 and d["derived"]["multimodal"]
    assert d["derived"]["layer_pattern"]["mixers"] == {"sliding": 29, "full": 5}
    r = run_advisor("catalog", "show", "qwen3-next-80b-a3b-test", "--json", "--catalog", str(NEW))
    d = json.loads(r.stdout)["derived"]
    assert d["hybrid"] and d["moe"] and d["kv_bytes_per_token_16bit"] == 24_576
    assert d["recurrent_state_bytes_per_sequence_16bit"] == 39_518_208 and d["params_mtp"] == 1_650_471_424
    r = run_advisor("catalog", "show", "gpt-oss-20b", "--catalog", str(NEW))
    assert r.returncode == 0, r.stderr
    assert "official formats: mxfp4 (no 16-bit checkpoint is published)" in r.stdout


def test_estimate_gpt_oss_on_l4_in_its_native_format():
    r = run_advisor("estimate", "gpt-oss-20b", "--target", "l4-24gb", "--no-probe", "--json", "--catalog", str(NEW))
    assert r.returncode == 0, r.stderr
    est = json.loads(r.stdout)
    assert est["format"] == "mxfp4" and est["memory"]["fits"]
    # vLLM (the default runtime on a named GPU) may use 0.9 of the L4's nvidia-smi total
    assert est["memory"]["available_bytes"] == int(24_152_899_584 * 0.9)
    assert est["format_origin"] == "official"
    r = run_advisor("estimate", "gpt-oss-20b", "--target", "l4-24gb", "--format", "bf16", "--json",
                    "--catalog", str(NEW))
    assert r.returncode == 0, r.stderr                               # no bf16 release: estimated as a community one
    assert json.loads(r.stdout)["format_origin"] != "official"


@pytest.mark.parametrize("fixture", sorted(p.name for p in HF.glob("*.json")))
def test_import_hf_config_reads_every_fixture(fixture, tmp_path):
    r = run_advisor("catalog", "import-hf-config", str(HF / fixture), "--id", "imported-model")
    assert r.returncode == 0, r.stderr
    (tmp_path / "entry.yaml").write_text(r.stdout.replace("FILL IN: URL of the licence", "https://example.org/l"))
    v = run_advisor("catalog", "validate", str(tmp_path / "entry.yaml"))
    assert v.returncode == 0, v.stdout + v.stderr

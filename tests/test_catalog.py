"""Catalog schema, loader, parameter derivation and the `advisor catalog` commands."""

from __future__ import annotations

import json
import warnings

import pytest
import yaml

from advisor.catalog.hfconfig import architecture_from_config
from advisor.catalog.loader import load_catalog
from advisor.catalog.params import param_breakdown
from advisor.catalog.schema import Architecture
from advisor.errors import CatalogError, UnknownIdError
from tests.conftest import FIXTURES, run_advisor

CAT = FIXTURES / "catalog"


def test_params_of_a_tiny_llama_derived_by_hand():
    arch = Architecture(model_type="llama", hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, vocab_size=100, tie_word_embeddings=True)
    b = param_breakdown(arch)
    embedding = 100 * 16
    attention = 4 * 16 * 16           # q, k, v, o with 2 heads of 8 (no GQA)
    mlp = 3 * 16 * 32                 # gate, up, down
    norms = 2 * 16                    # two RMSNorms per layer
    assert b.embedding == embedding
    assert b.attention == 2 * attention
    assert b.mlp == 2 * mlp
    assert b.lm_head == 0             # tied: counted once
    assert b.total == embedding + 2 * (attention + mlp + norms) + 16


def test_gqa_bias_and_untied_head_derived_by_hand():
    # qwen2-style: q/k/v biases, 4 heads of 8 with 2 KV heads, untied LM head
    arch = Architecture(model_type="qwen2", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=64, vocab_size=50)
    b = param_breakdown(arch)
    q, kv = 32 * 32, 32 * 16
    assert b.attention == q + 2 * kv + 32 * 32 + (32 + 2 * 16)
    assert b.lm_head == 50 * 32
    assert b.total == 50 * 32 * 2 + b.attention + 3 * 32 * 64 + 2 * 32 + 32


def test_moe_counts_all_experts_but_activates_two():
    arch = Architecture(model_type="mixtral", hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, vocab_size=10, num_local_experts=4, num_experts_per_tok=2)
    b = param_breakdown(arch)
    one_expert = 3 * 8 * 16
    router = 8 * 4
    assert b.mlp == 4 * one_expert + router
    assert b.active == b.total - 2 * one_expert


def test_gpt2_names_are_accepted():
    arch = Architecture.model_validate({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
                                        "n_positions": 1024, "vocab_size": 50257})
    assert (arch.hidden_size, arch.num_hidden_layers, arch.max_position_embeddings) == (768, 12, 1024)
    assert arch.ffn_size == 4 * 768


def test_user_catalog_loads_with_hf_config_and_aliases():
    cat, problems, _ = load_catalog([str(CAT / "good.yaml")], include_builtin=False, strict=False)
    assert problems == []
    assert cat.model("tiny-llama-test-instruct").id == "tiny-llama-test"
    gpt2 = cat.model("gpt2-test")
    assert gpt2.arch.hidden_size == 768 and gpt2.arch.tie_word_embeddings
    assert cat.model("TINY-LLAMA-TEST").offered_formats() == ["fp32", "bf16", "fp16", "int8"]


def test_unknown_model_suggests_close_ids():
    cat, _, _ = load_catalog([str(CAT / "good.yaml")], include_builtin=False, strict=False)
    with pytest.raises(UnknownIdError) as exc:
        cat.model("tiny-lama-test")
    assert "did you mean" in exc.value.one_line() and "tiny-llama-test" in exc.value.one_line()


def test_bad_entries_are_all_reported_with_file_line_entry_field():
    _, problems, _ = load_catalog([str(CAT / "bad.yaml")], include_builtin=False, strict=False)
    text = "\n".join(map(str, problems))
    assert "bad.yaml:5: entry 'bad-one': field 'params_total'" in text
    assert "field 'architecture.colour'" in text and "Extra inputs are not permitted" in text
    assert "entry 'Bad_Upper': field 'id'" in text
    assert "value 140.0 exceeds its scale" in text
    with pytest.raises(CatalogError, match="more"):
        load_catalog([str(CAT / "bad.yaml")], include_builtin=False)


def test_duplicate_ids_in_one_file_and_override_across_files(tmp_path):
    _, problems, _ = load_catalog([str(CAT / "dup.yaml")], include_builtin=False, strict=False)
    assert any("duplicate id" in str(p) for p in problems)
    other = tmp_path / "override.yaml"
    doc = yaml.safe_load((CAT / "good.yaml").read_text())
    doc["models"] = [dict(doc["models"][0], name="Overridden")]
    del doc["tasks"]
    other.write_text(yaml.safe_dump(doc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cat, problems, warns = load_catalog([str(CAT / "good.yaml"), str(other)], include_builtin=False)
    assert cat.model("tiny-llama-test").name == "Overridden"
    assert any("overrides" in w for w in warns) and any("overrides" in str(c.message) for c in caught)


def test_param_mismatch_beyond_two_percent_warns(tmp_path):
    doc = yaml.safe_load((CAT / "dup.yaml").read_text())
    entry = dict(doc["models"][0], params_total=7000)  # 6800 derived: 2.9% off
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    _, _, warns = load_catalog([str(tmp_path / "m.yaml")], include_builtin=False, strict=False)
    assert any("differs from the 6,800 derived" in w for w in warns)
    entry["params_total"] = 6900  # 1.4% off: within tolerance
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    assert load_catalog([str(tmp_path / "m.yaml")], include_builtin=False, strict=False)[2] == []


def test_malformed_yaml_is_one_problem_with_line():
    _, problems, _ = load_catalog([str(CAT / "malformed.yaml")], include_builtin=False, strict=False)
    assert len(problems) == 1 and "malformed.yaml" in str(problems[0]) and "malformed YAML" in str(problems[0])


def test_hf_config_qwen_sliding_window_switched_off_is_dropped():
    arch = architecture_from_config({"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
                                     "sliding_window": 4096, "use_sliding_window": False, "torch_dtype": "bfloat16"})
    assert arch.sliding_window is None and arch.sliding_layers() == 0


def test_builtin_catalog_is_valid_and_sourced():
    cat, problems, warns = load_catalog(include_env=False, strict=False)
    assert problems == [], "\n".join(map(str, problems))
    assert not [w for w in warns if "licence" in w], warns
    assert len(cat.models) >= 25
    assert {"summarization", "translation", "chat", "code", "classification", "extraction",
            "creative-writing", "rag-qa"} <= set(cat.tasks)
    required = {"t4-16gb", "l4-24gb", "a10g-24gb", "l40s-48gb", "rtx3090-24gb", "rtx4090-24gb", "a100-40gb",
                "a100-80gb", "h100-pcie-80gb", "h100-sxm-80gb", "h200-141gb", "cpu-server"}
    assert required <= set(cat.targets)
    params = sorted(m.params_total for m in cat.models.values())
    assert params[0] < 0.2e9 and params[-1] > 60e9
    assert any(m.architecture and m.architecture.is_moe for m in cat.models.values())
    assert sum(1 for m in cat.models.values() if m.lineage) >= 2
    for m in cat.models.values():
        assert m.params_source and m.license_source and m.architecture_source
        assert all(b.source for b in m.benchmarks)


# --- the CLI, as users run it -------------------------------------------------------------------


def test_cli_validate_reports_every_error_and_exits_2():
    """A bad catalog file is an input error (exit 2, as the README says): every problem on its own
    line with file:line, then exactly one `error:` line."""
    r = run_advisor("catalog", "validate", str(CAT / "bad.yaml"), str(CAT / "good.yaml"))
    assert r.returncode == 2
    problems = [line for line in r.stderr.splitlines() if line.startswith(f"  {CAT / 'bad.yaml'}:")]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(problems) >= 4 and "Traceback" not in r.stderr
    assert len(errors) == 1 and f"{len(problems)} problems" in errors[0] and "2 path(s)" in errors[0]


def test_cli_validate_builtin_catalog_is_clean():
    r = run_advisor("catalog", "validate", "catalog/", cwd=FIXTURES.parents[1])
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_cli_list_json_and_user_catalog_env(tmp_path):
    r = run_advisor("catalog", "list", "--json", env={"ADVISOR_CATALOG_PATH": str(CAT / "good.yaml")})
    assert r.returncode == 0, r.stderr
    ids = [m["id"] for m in json.loads(r.stdout)["models"]]
    assert "tiny-llama-test" in ids and "gpt2-test" in ids


def test_cli_list_with_task_shows_quality_proxy():
    r = run_advisor("catalog", "list", "--task", "test-task", "--json", "--catalog", str(CAT / "good.yaml"))
    assert r.returncode == 0, r.stderr
    rows = {m["id"]: m for m in json.loads(r.stdout)["models"]}
    # the CLI shows what the proxy computes (its arithmetic is pinned in tests/test_quality_proxy.py)
    from advisor.recommend.quality import quality_score

    cat, _, _ = load_catalog([str(CAT / "good.yaml")], include_env=False)
    want = quality_score(cat.model("tiny-llama-test"), cat.task("test-task"), "bf16", cat)
    assert want.score is not None
    assert rows["tiny-llama-test"]["quality_proxy"] == pytest.approx(want.score)
    assert rows["tiny-llama-test"]["quality_proxy_upper"] == pytest.approx(want.upper)
    assert rows["gpt2-test"]["quality_proxy"] is None and rows["gpt2-test"]["quality_reason"]


@pytest.mark.parametrize("args, needle", [
    (("catalog", "show", "qwen2.5-05b"), "did you mean"),
    (("catalog", "list", "--task", "summarisation"), "unknown task 'summarisation'"),
    (("catalog", "validate", "does-not-exist.yaml"), "no such file"),
    (("catalog", "import-hf-config", "nope.json", "--id", "x"), "file not found"),
    (("catalog", "list", "--catalog", str(CAT / "malformed.yaml")), "malformed YAML"),
])
def test_cli_bad_input_is_one_line_exit_2(args, needle):
    r = run_advisor(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2


def test_cli_import_hf_config_round_trips(tmp_path):
    r = run_advisor("catalog", "import-hf-config", str(CAT / "hf" / "gpt2-config.json"), "--id", "my-gpt2")
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    entry = doc["models"][0]
    assert entry["params_total"] == 126799104  # gpt2 with a 4096-position table, counted by transformers
    entry["license_source"] = "https://example.org/license"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(doc))
    cat, problems, _ = load_catalog([str(tmp_path / "mine.yaml")], include_builtin=False, strict=False)
    assert problems == [] and cat.model("my-gpt2").arch.num_hidden_layers == 12


def test_deeply_nested_value_is_one_clean_problem(tmp_path):
    """Found by the fuzzer: a field nested hundreds deep crashed while its error was rendered."""
    deep = "[" * 900 + "x" + "]" * 900
    (tmp_path / "c.yaml").write_text(f"models:\n  - id: m\n    name: {deep}\n    family: f\n")
    _, problems, _ = load_catalog([str(tmp_path / "c.yaml")], include_builtin=False, strict=False)
    assert len(problems) == 1 and "nested too deeply" in str(problems[0])


def test_an_id_nested_deeply_is_a_clean_error():
    """Fuzzer reproducer (benchmarks/fuzz_inputs.py, catalog kind): an `id` that is a list nested hundreds deep."""
    r = run_advisor("catalog", "list", "--json", "--catalog",
                    str(FIXTURES / "fuzz" / "regressions" / "catalog-nested-id.yaml"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "internal error" not in r.stderr


def test_unknown_benchmark_or_format_named_by_a_user_model_is_a_problem(tmp_path):
    """Benchmark and format ids are a vocabulary in catalog/benchmarks.yaml and formats.yaml."""
    entry = yaml.safe_load((CAT / "good.yaml").read_text())["models"][0]
    entry = {**entry, "id": "vocab-test", "aliases": [], "formats": ["int9"], "formats_source": "https://example.org/q",
             "benchmarks": [{"name": "mmlu-pro", "value": 40, "variant": "instruct", "source": "https://example.org/b"},
                            {"name": "mmlu-prro", "value": 40, "variant": "instruct", "source": "https://example.org/b"}]}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"models": [entry]}))
    _, problems, _ = load_catalog([str(tmp_path / "m.yaml")], strict=False)
    messages = [p.message for p in problems if p.entry == "vocab-test"]
    assert any("unknown format 'int9'" in m for m in messages), messages
    assert any("unknown benchmark 'mmlu-prro'" in m and "mmlu-pro" in m for m in messages), messages
    assert not any("'mmlu-pro'" in m and "unknown benchmark 'mmlu-pro'" in m for m in messages)

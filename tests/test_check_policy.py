"""The gate's policy file: validation with file:line: field errors, and flags laid over it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from advisor.check.policy import Policy, load_policy, merge, parse_model_uri
from advisor.errors import UsageError

CHECK = Path(__file__).parent / "fixtures" / "check"


def test_policy_file_loads_with_target_shorthand_and_overrides():
    p = load_policy(CHECK / "policy-pass.yaml")
    assert [t.id for t in p.targets] == ["gate-gpu-24gb", "gate-gpu-80gb"]
    assert p.effective_thresholds("gate-gpu-24gb")["max_latency_ms"] == 600000
    assert p.effective_thresholds("gate-gpu-80gb")["max_latency_ms"] == 900000   # per-target override
    assert p.effective_thresholds("gate-gpu-80gb")["memory_headroom"] == 0.2
    # catalog paths are relative to the policy file, not to the working directory
    assert p.catalog == [str((CHECK / "catalog.yaml").resolve())]


def test_targets_as_a_mapping(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("targets:\n  a10g-24gb: {max_latency_ms: 3000}\n  l4-24gb:\n")
    p = load_policy(path)
    assert [t.id for t in p.targets] == ["a10g-24gb", "l4-24gb"]
    assert p.effective_thresholds("a10g-24gb")["max_latency_ms"] == 3000
    assert p.effective_thresholds("l4-24gb")["max_latency_ms"] is None


def test_bad_threshold_names_file_line_and_field():
    with pytest.raises(UsageError) as exc:
        load_policy(CHECK / "policy-bad-threshold.yaml")
    assert exc.value.one_line() == (f"{CHECK / 'policy-bad-threshold.yaml'}:7: field 'thresholds.max_latency_ms': "
                                    "Input should be greater than 0")


def test_unknown_key_is_an_error_with_did_you_mean():
    with pytest.raises(UsageError) as exc:
        load_policy(CHECK / "policy-typo.yaml")
    line = exc.value.one_line()
    assert line.startswith(f"{CHECK / 'policy-typo.yaml'}:4: field 'thresholds.max_latncy_ms': Extra inputs")
    assert "did you mean: max_latency_ms" in line


@pytest.mark.parametrize("text, where", [
    ("targets:\n  - id: a10g-24gb\n    gpus: 0\n", ":3: field 'targets.0.gpus'"),
    ("model_path: x\nmodel_uri: models:/m/1\n", "field ''"),
    ("model_uri: runs:/abc/model\n", ":1: field 'model_uri'"),
    ("license: 5\n", ":1: field 'license'"),
    ("- just\n- a list\n", "expected a mapping"),
    ("model: [unclosed\n", "malformed YAML"),
])
def test_other_policy_errors_are_one_line(tmp_path, text, where):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as exc:
        load_policy(path)
    msg = exc.value.one_line()
    assert msg.startswith(str(path)) and "\n" not in msg
    if where != "field ''":
        assert where in msg
    else:
        assert "not both" in msg


def test_flags_override_the_file_and_beat_per_target_values():
    p = merge(load_policy(CHECK / "policy-pass.yaml"), max_latency_ms=1234, format="int8", prompt_tokens=77)
    assert p.effective_thresholds("gate-gpu-80gb")["max_latency_ms"] == 1234
    assert p.format == "int8" and p.request.prompt_tokens == 77
    assert p.license == ["apache-2.0", "mit"]            # untouched keys stay


def test_target_flags_choose_targets_but_keep_file_overrides():
    p = merge(load_policy(CHECK / "policy-pass.yaml"), targets=("gate-gpu-80gb", "l4-24gb"))
    assert [t.id for t in p.targets] == ["gate-gpu-80gb", "l4-24gb"]
    assert p.effective_thresholds("gate-gpu-80gb")["max_latency_ms"] == 900000
    assert p.effective_thresholds("l4-24gb")["max_latency_ms"] == 600000


def test_model_source_flag_replaces_the_files_source():
    base = Policy(model="gate-small", model_path="/x/config.json")
    p = merge(base, model_uri="models:/m@champion")
    assert p.model_path is None and p.model_uri == "models:/m@champion" and p.model == "gate-small"


def test_bad_flag_value_is_a_usage_error():
    with pytest.raises(UsageError, match="option 'thresholds.max_ttft_ms'"):
        merge(None, max_ttft_ms=-1)


def test_explain_yaml_round_trips():
    p = merge(load_policy(CHECK / "policy-pass.yaml"), tracking_uri="sqlite:///x.db")
    again = Policy.model_validate(yaml.safe_load(p.to_yaml()))
    assert again == p
    assert "gate-gpu-24gb" in yaml.safe_load(p.to_yaml())["targets"]   # shorthand kept


@pytest.mark.parametrize("uri, parsed", [
    ("models:/summarizer/3", ("summarizer", "3", None)),
    ("models:/summarizer@champion", ("summarizer", None, "champion")),
    ("models:/team/summarizer/12", ("team/summarizer", "12", None)),
])
def test_parse_model_uri(uri, parsed):
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["models:/", "models:/x", "models:/x/latest", "runs:/abc/model", "models:/@a"])
def test_parse_model_uri_rejects(uri):
    with pytest.raises(ValueError):
        parse_model_uri(uri)


def test_alias_bomb_is_refused_quickly(tmp_path):
    import time

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "policy.yaml"
    path.write_text("\n".join(lines) + "\nlicense: *a8\n")
    start = time.perf_counter()
    with pytest.raises(UsageError, match="more than 200,000 values"):
        load_policy(path)
    assert time.perf_counter() - start < 5


def test_deeply_nested_policy_is_a_clean_error(tmp_path):
    """Found by the fuzzer: nesting hundreds deep crashed while the validation error was rendered."""
    from advisor.check.policy import load_policy
    from advisor.errors import CatalogError

    deep = "[" * 900 + "x" + "]" * 900
    p = tmp_path / "p.yaml"
    p.write_text(f"model: qwen2.5-0.5b\nlicense: {deep}\n")
    with pytest.raises(CatalogError, match="nested too deeply"):
        load_policy(p)

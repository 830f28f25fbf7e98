"""Every crash the fuzzer found, as a fixed reproducer (in-process, through the real CLI entry).

Each case must end cleanly: exit 0/1, or exit 2 with exactly one "error:" line; never
"internal error", a traceback or a hang.
"""

from __future__ import annotations

import json

import pytest

from tests import fuzzing
from tests.fuzzing import CATALOG_BYTES, GPT2_CONFIG, Case, laughs, run_case

TASK = b"tasks:\n  - id: t\n    description: x\n    prompt_tokens: %s\n"
BIG_INT = "9" * 5000


def _case(kind, files, argv, env=None) -> Case:
    return Case(kind, files, argv, env=env or {})


CASES = {
    # advisor/yamlio.py: PyYAML raises ValueError/KeyError/AttributeError (not YAMLError) for
    # resolvable-but-wrong explicit tags
    "yaml !!int abc": _case("catalog", {"c.yaml": TASK % b"!!int abc"}, ["catalog", "validate", "{dir}/c.yaml"]),
    "yaml !!float abc": _case("catalog", {"c.yaml": TASK % b"!!float abc"},
                              ["catalog", "list", "--catalog", "{dir}/c.yaml"]),
    "yaml !!bool maybe": _case("catalog", {"c.yaml": TASK % b"!!bool maybe"}, ["catalog", "validate", "{dir}/c.yaml"]),
    "yaml !!timestamp in --config": _case("recommend-config", {"cfg.yaml": b"task: !!timestamp yesterday\n"},
                                          ["recommend", "--no-probe", "--no-mlflow", "--config", "{dir}/cfg.yaml"]),
    "yaml !!int in --policy": _case("policy", {"p.yaml": b"request: {prompt_tokens: !!int lots}\n"},
                                    ["check", "--policy", "{dir}/p.yaml", "--no-probe", "--no-mlflow"]),
    # advisor/catalog/hfconfig.py: json.loads raises a plain ValueError past 4300 digits
    "config.json 5000-digit int": _case("hf-config", {"config.json": ('{"model_type": "llama", "hidden_size": '
                                                                      f'{BIG_INT}}}').encode()},
                                        ["catalog", "import-hf-config", "{dir}/config.json", "--id", "x"]),
    # advisor/hardware/profile.py load_fixture: RecursionError and the int-digits ValueError
    "hardware fixture deep JSON": _case("hardware-profile", {"hw.json": b"[" * 100000},
                                        ["profile", "--no-torch"], {"ADVISOR_HARDWARE_FIXTURE": "{dir}/hw.json"}),
    "hardware fixture 5000-digit int": _case("hardware-profile", {"hw.json": f'{{"count": {BIG_INT}}}'.encode()},
                                             ["profile", "--no-torch", "--json"],
                                             {"ADVISOR_HARDWARE_FIXTURE": "{dir}/hw.json"}),
    # advisor/hardware/parse.py peak_bandwidth_gbs and advisor/hardware/match.py match_target:
    # OverflowError on integers too large for a float
    "NVML readout bus width 1e400": _case("hardware-profile", {"hw.json": (
        '{"count": 1, "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "bus_width_bits": 1%s, '
        '"max_clock_mem_mhz": 2619, "memory": {"total": 85520809984, "free": 1, "used": 1}}]}' % ("0" * 400)).encode()},
        ["profile", "--no-torch", "--json"], {"ADVISOR_HARDWARE_FIXTURE": "{dir}/hw.json"}),
    "NVML readout memory 1e400": _case("hardware-profile", {"hw.json": (
        '{"count": 1, "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", '
        '"memory": {"total": 1%s, "free": 1, "used": 1}}]}' % ("0" * 400)).encode()},
        ["profile", "--no-torch", "--json"], {"ADVISOR_HARDWARE_FIXTURE": "{dir}/hw.json"}),
    # advisor/recommend/config.py + recommend_cmd.py: batch has no upper bound (check's has one),
    # then advisor/estimate/memory.py overflows converting it to float
    "recommend --batch 1e400": _case("cli-args", {}, ["recommend", "--no-probe", "--no-mlflow",
                                                      "--task", "summarization",
                                                      "--target", "a10g-24gb", "--batch", "1" + "0" * 400]),
    "recommend --config batch 1e400": _case("recommend-config", {"cfg.yaml": b"task: summarization\n"
                                                                             b"targets: [a10g-24gb]\n"
                                                                             b"batch: 1" + b"0" * 400 + b"\n"},
                                            ["recommend", "--no-probe", "--no-mlflow", "--config", "{dir}/cfg.yaml"]),
    # advisor/catalog/loader.py catalog_files: Path.is_dir() raises ENAMETOOLONG
    "--catalog name too long": _case("cli-args", {}, ["catalog", "list", "--catalog", "a" * 300]),
    # advisor/catalog/loader.py / hfconfig.py: a NUL in hf_config makes Path() calls raise ValueError
    "hf_config with NUL": _case("catalog", {"c.yaml": CATALOG_BYTES.replace(b"hf_config: hf/gpt2.json",
                                                                             b'hf_config: "hf/gpt2\\0.json"'),
                                            "hf/gpt2.json": GPT2_CONFIG},
                                ["catalog", "validate", "{dir}/c.yaml"]),
    # fixed by the lead (advisor/yamlio.py MAX_VALUES): kept as regressions
    "billion laughs catalog": _case("catalog", {"c.yaml": laughs(9, 10).encode()},
                                    ["catalog", "validate", "{dir}/c.yaml"]),
    "billion laughs policy": _case("policy", {"p.yaml": laughs(9, 10, where="top").encode()},
                                   ["check", "--policy", "{dir}/p.yaml", "--no-probe", "--no-mlflow"]),
    "billion laughs --config": _case("recommend-config", {"cfg.yaml": laughs(9, 10, where="top").encode()},
                                     ["recommend", "--no-probe", "--no-mlflow", "--config", "{dir}/cfg.yaml"]),
    "deep YAML nesting": _case("catalog", {"c.yaml": b"models: " + b"[" * 20000},
                               ["catalog", "validate", "{dir}/c.yaml"]),
    "non-UTF-8 catalog": _case("catalog", {"c.yaml": "models: [{id: é}]".encode("latin-1")},
                               ["catalog", "list", "--catalog", "{dir}/c.yaml"]),
    "binary garbage policy": _case("policy", {"p.yaml": bytes(range(256))},
                                   ["check", "--policy", "{dir}/p.yaml", "--no-probe", "--no-mlflow"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzzer_finding_ends_cleanly(name, tmp_path):
    out = run_case(CASES[name], tmp_path, timeout=20)
    assert out.crash is None, f"{name}: {out.crash}\n{out.stderr[-600:]}"
    assert out.rc in (0, 1, 2)


def test_a_probe_cache_file_with_a_5000_digit_number_is_ignored(tmp_path):
    doc, _ = fuzzing.probe_cache_base("rates")
    text = json.dumps(doc).replace('"bandwidth_gbs": 24.0', f'"bandwidth_gbs": {BIG_INT}')
    out = run_case(Case("probe-cache", {"probe.json": text.encode()}, ["rates"], direct="probe-cache"), tmp_path)
    assert out.crash is None, out.crash

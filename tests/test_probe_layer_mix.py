"""A hybrid's truncated probe keeps one layer of every kind and prices each kind's missing layers at
that kind's cost (pure: no torch). Granite-4.0-H cut to its first layers was all Mamba-2, which
transformers 5 cannot run with a cache, and priced 40 layers as Mamba-2."""
from __future__ import annotations

import pytest

from advisor.estimate.schema import MeasuredRates
from advisor.probe.api import _cross_check
from advisor.probe.arch_probe import ArchProbeDetail
from advisor.probe.extrapolate import ComponentTimes, TimedSamples
from advisor.probe.layer_mix import layer_kinds, layer_mix, probe_depth, truncated_layers
from tests.archs import tiny

M, A = "mamba", "attention"
GRANITE_TYPES = [M] * 5 + [A] + [M] * 9 + [A] + [M] * 4    # 20 layers, attention at 5 and 15


def granite(layers=GRANITE_TYPES):
    return tiny(model_type="granitemoehybrid", num_hidden_layers=len(layers), layer_types=layers,
                mamba_n_heads=8, mamba_d_head=16, mamba_d_state=16, mamba_n_groups=1, mamba_d_conv=4,
                mamba_expand=2)


def nemotron(pattern="M-M-M*-M-M-M*-"):
    return tiny(model_type="nemotron_h", num_hidden_layers=len(pattern), hybrid_override_pattern=pattern,
                mamba_num_heads=8, mamba_head_dim=16, ssm_state_size=16, n_groups=1, conv_kernel=4)


def test_a_plain_model_keeps_its_prefix():
    arch = tiny(num_hidden_layers=6)
    assert layer_kinds(arch) is None and layer_mix(arch, 2) is None
    assert probe_depth(arch, 2) == 2
    assert truncated_layers(arch, 3) == [0, 1, 2]


def test_granite_keeps_two_mamba_layers_and_its_first_attention():
    arch = granite()
    assert probe_depth(arch, 2) == 3          # two kinds + a second layer of the first
    assert truncated_layers(arch, 3) == [0, 1, 5]
    assert truncated_layers(arch, 4) == [0, 1, 2, 5]
    mix = layer_mix(arch, 3)
    assert mix.timed == ("mamba+mlp", "mamba+mlp", "attention+mlp")
    assert mix.full_counts == {"mamba+mlp": 18, "attention+mlp": 2}


def test_nemotron_pattern_keeps_mamba_mlp_and_attention():
    arch = nemotron()
    assert layer_mix(arch, 4).full_counts == {"mamba": 6, "mlp": 6, "attention": 2}
    assert probe_depth(arch, 2) == 4
    assert truncated_layers(arch, 4) == [0, 1, 2, 5]    # "M-M" then the first "*"


def test_a_prefix_that_already_holds_every_kind_is_kept():
    arch = granite([A, M, M, M, A, M])
    assert truncated_layers(arch, 3) == [0, 1, 2]


def test_truncated_hybrid_config_follows_the_chosen_layers():
    from advisor.probe.build import hf_config_kwargs

    kw = hf_config_kwargs(granite(), 3, 512, 64)
    assert kw["layer_types"] == [M, M, A] and kw["num_hidden_layers"] == 3
    kw = hf_config_kwargs(nemotron(), 4, 512, 64)
    assert kw["hybrid_override_pattern"] == "M-M*"


def samples(mix, layer_ms_per_sample, total_extra=1.0, head=10.0, gap=0.5):
    s = TimedSamples(mix=mix)
    for ls in layer_ms_per_sample:
        s.add(sum(ls) + gap * (len(ls) - 1) + total_extra, ls, head, [gap] * (len(ls) - 1))
    return s


def test_each_kind_is_priced_at_its_own_later_layer_cost():
    mix = layer_mix(granite(), 3)               # timed: mamba, mamba, attention; full 18 mamba + 2 attention
    s = samples(mix, [[9.0, 4.0, 2.0], [9.0, 4.0, 2.0]])
    truncated = 9 + 4 + 2 + 2 * 0.5 + 1.0        # layers, 2 gaps, fixed
    missing = (18 - 2) * (4.0 + 0.5) + (2 - 1) * (2.0 + 0.5)   # mamba from layer 1 (layer 0 runs colder)
    assert s.predictions(20) == pytest.approx([truncated + 10.0 + missing] * 2)
    assert s.typical_kind_ms() == {"mamba+mlp": 4.0, "attention+mlp": 2.0}
    comp = s.components()
    assert comp.layer_ms == pytest.approx((18 * 4.0 + 2 * 2.0) / 20)
    assert comp.layer_ms_by_kind == {"mamba+mlp": 4.0, "attention+mlp": 2.0}


def test_without_a_mix_every_missing_layer_costs_a_later_layer():
    s = samples(None, [[9.0, 4.0, 2.0]])
    assert s.predictions(20) == pytest.approx([9 + 4 + 2 + 1.0 + 1.0 + 10.0 + 17 * (3.0 + 0.5)])


def test_a_kind_timed_only_as_the_first_layer_uses_that_layer():
    mix = layer_mix(granite(), 2)               # timed: mamba (layer 0), attention
    assert mix.timed == ("mamba+mlp", "attention+mlp")
    s = samples(mix, [[9.0, 2.0]])
    assert s.typical_kind_ms() == {"mamba+mlp": 9.0, "attention+mlp": 2.0}


def _detail(layer_ms):
    c = ComponentTimes(fixed_ms=1, layer_ms=layer_ms, lm_head_ms=1, layer_samples=2, samples=1)
    return ArchProbeDetail(depth=2, full_depth=2, backend="transformers", prefill=c, decode=c, wall_s=1)


def test_cross_check_floor_is_the_weight_read_at_the_measured_rate():
    arch = tiny()                                   # 36,864 weights per layer (+ 128 norm weights)
    per_layer_bytes = (36_864 + 128) * 4
    rates = MeasuredRates(device="cpu", matmul_tflops={"fp32": 1}, bandwidth_gbs=1.0, decode_gbs={"fp32": 2.0},
                          step_overhead_ms=0.001)
    floor_ms = per_layer_bytes / 2e9 * 1000          # at the fp32 matmul-vector read rate
    assert _cross_check(_detail(0.49 * floor_ms), arch, "fp32", 1, rates)
    assert _cross_check(_detail(0.51 * floor_ms), arch, "fp32", 1, rates) == []
    no_gemv = rates.model_copy(update={"decode_gbs": {}})    # the copy rate then (1 GB/s: floor x2)
    assert _cross_check(_detail(0.9 * floor_ms), arch, "fp32", 1, no_gemv)
    assert _cross_check(_detail(1.1 * floor_ms), arch, "fp32", 1, no_gemv) == []

"""Every built-in catalog architecture that transformers knows builds as a truncated probe body.

Building a config is where a transformers release tightens its validation (5.x checks field types:
`mamba_expand` 2.0 is refused where 2 is taken), and a refusal there used to end `advisor recommend`
with an internal error. The bodies are built on the meta device: no memory, no weights.
"""
from __future__ import annotations

import math

import pytest

from advisor.catalog.loader import load_catalog
from advisor.probe.build import SMALL_VOCAB, hf_config_kwargs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CATALOG, _, _ = load_catalog(include_env=False)
KNOWN = set(transformers.models.auto.configuration_auto.CONFIG_MAPPING.keys())
ARCHS = {e.id: e.arch for e in CATALOG.models.values() if e.arch is not None and e.arch.model_type in KNOWN}


def test_most_of_the_catalog_is_built_by_transformers():
    assert len(ARCHS) >= 0.8 * len(CATALOG.models), sorted(set(CATALOG.models) - set(ARCHS))


@pytest.mark.parametrize("model_id", sorted(ARCHS))
def test_truncated_body_config_and_modules_build(model_id):
    arch = ARCHS[model_id]
    layers = min(2, arch.num_hidden_layers)
    kwargs = hf_config_kwargs(arch, layers, SMALL_VOCAB, 64)
    cfg = transformers.AutoConfig.for_model(arch.model_type, **kwargs)
    with torch.device("meta"):
        module = transformers.AutoModel.from_config(cfg)
    assert getattr(module.config, "num_hidden_layers", layers) == layers
    assert sum(p.numel() for p in module.parameters()) > 0


def test_integral_floats_reach_transformers_as_ints():
    arch = next(a for a in ARCHS.values() if a.expand is not None)
    kwargs = hf_config_kwargs(arch, 2, SMALL_VOCAB, 64)
    value = kwargs.get("expand", kwargs.get("mamba_expand"))
    assert isinstance(value, int) and value == arch.expand


def test_a_config_transformers_refuses_falls_back_to_the_built_in_block_with_a_note(monkeypatch):
    from advisor.probe import build

    def refuse(model_type, **kwargs):
        raise TypeError("a field transformers does not take")

    monkeypatch.setattr(transformers.AutoConfig, "for_model", refuse)
    arch = ARCHS["qwen2.5-0.5b"]
    body = build.build_body(arch, 1, "fp32", "cpu")
    assert body.backend == "built-in"
    assert any("cannot build model_type 'qwen2' (TypeError)" in n for n in body.notes), body.notes


def _tiny_qwen35():
    from advisor.catalog.schema import Architecture

    return Architecture(model_type="qwen3_5_text", hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=16, intermediate_size=128, vocab_size=1000,
                        layer_types=["linear_attention"] * 3 + ["full_attention"], linear_num_key_heads=2,
                        linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16,
                        linear_conv_kernel_dim=4)


def test_recurrent_decay_parameters_get_the_librarys_init_and_nothing_else_does():
    """cheap_fill_ puts +-0.02 everywhere; a Gated DeltaNet's A_log then makes its reference kernel
    run about a fifth faster than with the library's own init (which the full model, and training, start from)."""
    from advisor.probe import build

    body = build.build_body(_tiny_qwen35(), 3, "fp32", "cpu", min_positions=64)
    assert body.backend == "transformers" and body.notes == []
    a_logs = [p.detach() for n, p in body.module.named_parameters() if n.endswith("A_log")]
    dt_bias = [p for n, p in body.module.named_parameters() if n.endswith("dt_bias")]
    assert len(a_logs) == 2 and len(dt_bias) == 2            # layers 0 and 1 of the 3 built (0, 1, 3)
    for p in a_logs:   # Qwen3.5's init: log(uniform(0.01, 16)); cheap_fill_ would give |x| <= 0.02
        assert float(p.abs().max()) > 0.05 and float(p.max()) <= math.log(16) + 1e-6
    assert all(bool((p == 1.0).all()) for p in dt_bias)
    weights = [p.detach() for n, p in body.module.named_parameters() if n.endswith("in_proj_qkv.weight")]
    assert weights and all(float(p.abs().max()) <= 0.02 + 1e-6 for p in weights)   # still cheap-filled


def test_a_model_without_recurrent_layers_is_left_as_filled():
    from advisor.probe import build
    from tests.archs import tiny

    body = build.build_body(tiny(), 2, "fp32", "cpu")
    before = {n: p.clone() for n, p in body.module.named_parameters()}
    assert build.library_init_recurrent_(body.module) == []
    assert all(torch.equal(before[n], p) for n, p in body.module.named_parameters())


def test_without_the_librarys_init_the_placeholder_decay_is_said():
    from advisor.probe import build

    class Mixer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.A_log = torch.nn.Parameter(torch.zeros(4))

    outer = torch.nn.Sequential(Mixer())          # no _init_weights: not a transformers model
    notes = build.library_init_recurrent_(outer)
    assert notes and "placeholder values" in notes[0]
    assert bool((outer[0].A_log == 0).all())      # left as it was

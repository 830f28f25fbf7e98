"""Every built-in catalog architecture that transformers knows builds as a truncated probe body.

Building a config is where a transformers release tightens its validation (5.x checks field types:
`mamba_expand` 2.0 is refused where 2 is taken), and a refusal there used to end `advisor recommend`
with an internal error. The bodies are built on the meta device: no memory, no weights.
"""
from __future__ import annotations

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

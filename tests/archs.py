"""Hand-sized architectures the estimator tests count by hand."""

from __future__ import annotations

from advisor.catalog.schema import Architecture


def tiny(**over) -> Architecture:
    """hidden 64, 2 layers, 4 heads of 16, 2 KV heads (256 KV bytes per token in bf16), gated MLP 128,
    vocab 1000, tied head: 73,728 weights the layers multiply (2 x (64x64 + 2 x 64x32 + 64x64 + 3 x 64x128)),
    64,000 in the LM head, 138,048 in all."""
    cfg = dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, intermediate_size=128, vocab_size=1000, tie_word_embeddings=True)
    cfg.update(over)
    return Architecture(**cfg)


def big() -> Architecture:
    """llama-3.1-70b's shape: 64 heads, 8 KV heads, 80 layers."""
    return Architecture(model_type="llama", hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                        num_key_value_heads=8, intermediate_size=28672, vocab_size=128256)

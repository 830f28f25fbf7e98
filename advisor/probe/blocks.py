"""A built-in Llama-style decoder (rotary GQA attention via scaled_dot_product_attention) used when
transformers is not installed or does not know the model_type. Its norm (RMSNorm or LayerNorm),
MLP (gated or plain) and biases follow the model_type's rules in catalog/architectures.yaml; hybrid
token mixers (Gated DeltaNet, Mamba-2) are timed as attention layers here.

Built from an Architecture with any number of layers; only timing matters, so weights are
whatever the caller fills in. torch is imported inside build_llama_like(); the classes are
created there so that importing this module stays free of torch.
"""

from __future__ import annotations

from typing import Any

from advisor.catalog.schema import Architecture


def build_llama_like(arch: Architecture, layers: int, vocab_size: int | None = None) -> Any:
    """An nn.Module `LlamaLike` with forward(ids, cache=None) -> (hidden, cache) and `.layers`."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    h = arch.hidden_size
    heads, kv, hd = arch.num_attention_heads, arch.kv_heads, arch.head_size
    ffn = arch.ffn_size
    vocab = vocab_size or arch.vocab_size
    fam = arch.family
    bias = arch.attention_bias if arch.attention_bias is not None else fam.qkv_bias
    o_bias = arch.attention_bias if arch.attention_bias is not None else fam.o_bias
    mlp_bias = arch.mlp_bias if arch.mlp_bias is not None else fam.mlp_bias
    gated = fam.mlp == "gated"

    class RMSNorm(nn.Module):
        def __init__(self, dim: int, eps: float = 1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))
            self.eps = eps

        def forward(self, x):
            dt = x.dtype
            x32 = x.float()
            x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
            return self.weight * x32.to(dt)

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def make_norm(dim: int):
        return nn.LayerNorm(dim) if fam.norm == "layernorm" else RMSNorm(dim)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = make_norm(h)
            self.q_proj = nn.Linear(h, heads * hd, bias=bias)
            self.k_proj = nn.Linear(h, kv * hd, bias=bias)
            self.v_proj = nn.Linear(h, kv * hd, bias=bias)
            self.o_proj = nn.Linear(heads * hd, h, bias=o_bias)
            self.post_attention_layernorm = make_norm(h)
            self.gate_proj = nn.Linear(h, ffn, bias=mlp_bias) if gated else None
            self.up_proj = nn.Linear(h, ffn, bias=mlp_bias)
            self.down_proj = nn.Linear(ffn, h, bias=mlp_bias)

        def forward(self, x, cos, sin, past):
            b, t, _ = x.shape
            y = self.input_layernorm(x)
            q = self.q_proj(y).view(b, t, heads, hd).transpose(1, 2)
            k = self.k_proj(y).view(b, t, kv, hd).transpose(1, 2)
            v = self.v_proj(y).view(b, t, kv, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if past is not None:
                k = torch.cat([past[0], k], dim=2)
                v = torch.cat([past[1], v], dim=2)
            present = (k, v)
            if kv != heads:
                k = k.repeat_interleave(heads // kv, dim=1)
                v = v.repeat_interleave(heads // kv, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and t > 1)
            x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, heads * hd))
            y = self.post_attention_layernorm(x)
            if self.gate_proj is not None:
                x = x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))
            else:
                x = x + self.down_proj(F.gelu(self.up_proj(y)))
            return x, present

    class LlamaLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, h)
            self.layers = nn.ModuleList(Block() for _ in range(layers))
            self.norm = make_norm(h)
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            self.register_buffer("inv_freq", inv, persistent=False)

        def forward(self, ids, cache=None):
            start = 0 if cache is None else cache[0][0].shape[2]
            pos = torch.arange(start, start + ids.shape[1], device=ids.device, dtype=torch.float32)
            freqs = torch.outer(pos, self.inv_freq.to(ids.device))
            emb = torch.cat((freqs, freqs), dim=-1)
            x = self.embed_tokens(ids)
            cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
            new_cache = []
            for i, layer in enumerate(self.layers):
                x, present = layer(x, cos, sin, None if cache is None else cache[i])
                new_cache.append(present)
            return self.norm(x), new_cache

    return LlamaLike()

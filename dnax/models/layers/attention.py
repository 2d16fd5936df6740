"""Llama-style layers for the Transformer++ backbone: RMSNorm, rotary multi-head attention with grouped keys and
values, SwiGLU feed-forward.

Parameter names follow DNA-xLSTM `models/llama/modelling_llama.py` (itself llama2.c's `model.py`), so reference
checkpoints load with strict key matching: `attention.{wq, wk, wv, wo}.weight`, `feed_forward.{w1, w2, w3}.weight`,
RMSNorm `weight`. No biases anywhere.

RoPE is Meta's interleaved-pair convention (`dnax.models.layers.common.apply_rope`): query/key features (2j, 2j+1)
of each head rotate together. Hugging Face's Llama rotates halves (j, j + head_dim/2) instead; the two agree once the
rows of `wq`/`wk` are permuted as HF's `convert_llama_weights_to_hf.py` does (`meta_to_hf_rope_rows`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnax.models.layers.common import apply_rope


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, normalised in fp32 and cast back before the scale (as the reference)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on queries and keys, `n_kv_heads` key/value heads shared by groups of
    `n_heads // n_kv_heads` query heads (query head h reads key/value head h // group), through
    `F.scaled_dot_product_attention`; `causal` picks a lower-triangular mask (CLM) or none (MLM)."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, dropout: float = 0.0,
                 causal: bool = True):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if d_model % n_heads:
            raise ValueError(f"Attention: d_model {d_model} is not a multiple of n_heads {n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(f"Attention: n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        if self.head_dim % 2:
            raise ValueError(f"Attention: head dim {self.head_dim} (d_model / n_heads) must be even for RoPE")
        self.dropout, self.causal = dropout, causal
        self.wq = nn.Linear(d_model, n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(n_heads * self.head_dim, d_model, bias=False)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (B, S, D), cos/sin (S, head_dim/2) -> (B, S, D)."""
        B, S, _ = x.shape
        q = self.wq(x).view(B, S, self.n_heads, self.head_dim).transpose(1, 2)      # (B, H, S, Dh)
        k = self.wk(x).view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)   # (B, Hkv, S, Dh)
        v = self.wv(x).view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = self.n_heads // self.n_kv_heads
        if group > 1:  # (B, Hkv, S, Dh) -> (B, H, S, Dh), each kv head repeated for its group (a view, then a copy)
            k = k[:, :, None].expand(B, self.n_kv_heads, group, S, self.head_dim).reshape(B, self.n_heads, S, -1)
            v = v[:, :, None].expand(B, self.n_kv_heads, group, S, self.head_dim).reshape(B, self.n_heads, S, -1)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal)                  # (B, H, S, Dh)
        return self.resid_dropout(self.wo(y.transpose(1, 2).reshape(B, S, -1)))


def swiglu_hidden_dim(d_model: int, hidden_dim: int | None, multiple_of: int) -> int:
    """`hidden_dim`, or (when None) 2/3 of 4 d_model rounded up to `multiple_of` (the reference's default)."""
    if hidden_dim is not None:
        return hidden_dim
    hidden = int(2 * (4 * d_model) / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x), then dropout. HF names: w1 = gate_proj, w3 = up_proj, w2 = down_proj."""

    def __init__(self, d_model: int, hidden_dim: int, dropout: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, d_model, bias=False)
        self.w3 = nn.Linear(d_model, hidden_dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, S, D)
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


def meta_to_hf_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the output rows of a Meta-layout `wq`/`wk` (interleaved RoPE pairs) into Hugging Face's rotate-half
    layout, per head: HF `convert_llama_weights_to_hf.permute`. (n_heads * Dh, D) -> (n_heads * Dh, D)."""
    rows, cols = weight.shape
    return weight.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)

"""Small building blocks shared by the xLSTM layers, numerically identical to the `xlstm` package (v1 blocks).

Parameter names and shapes follow `xlstm.components.*`, so reference checkpoints load with strict key matching:

- `LayerNorm`: weight stored as an offset, effective scale `1 + weight` (`residual_weight=True`), optional bias.
- `MultiHeadLayerNorm`: per-head LayerNorm over the head dimension (= `F.group_norm` with one group per head).
- `CausalConv1d`: depthwise conv over time, child `conv` (an `nn.Conv1d`) holds `conv.weight (F, 1, K)`, `conv.bias`;
  causal (left padding) or non-causal ('same' padding, PyTorch convention: left (K-1)//2, right the rest).
- `LinearHeadwiseExpand`: block-diagonal projection, `weight (NH, out/NH, in/NH)`.
- RoPE (`rope_cos_sin`, `apply_rope`): interleaved pairs within each head, theta 500000 (DNA-xLSTM).
- `ScaledSinusoidalEmbedding`: absolute sinusoidal positions times a learnable scalar `scale` (sLSTM option).
"""
from __future__ import annotations

import functools
import importlib.util
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- init helpers (xlstm.components.init)


def triton_runs_on(x: torch.Tensor) -> bool:
    """Whether Triton kernels can run on `x`: CUDA tensors, or any under Triton's interpreter (TRITON_INTERPRET=1)."""
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


@functools.cache
def triton_kernels_importable() -> bool:
    """Whether dnax's Triton kernels can be imported: triton installed and the repository's `kernels/` folder on the
    path (an editable install or the repository root). Checked without importing either; 'auto' backends fall back
    to their PyTorch (or CUDA-extension) paths where this is False."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("triton", "kernels.selective_scan"))
    except (ImportError, ValueError):  # a `kernels` that is not a package (PyPI's unrelated one, a stray module)
        return False


def auto_picks_triton(x: torch.Tensor) -> bool:
    """An 'auto' backend's choice of dnax's Triton kernels: CUDA tensors where they import (measured faster than the
    PyTorch loops and the xlstm CUDA kernel on an H100, `benchmarks/results/train_step_cuda_1024_bf16.md`)."""
    return x.is_cuda and triton_kernels_importable()


def small_init_(param: torch.Tensor, dim: int) -> torch.Tensor:
    """N(0, sqrt(2 / (5 dim))) ("Transformers without Tears")."""
    return nn.init.normal_(param, mean=0.0, std=math.sqrt(2 / (5 * dim)))


def wang_init_(param: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    """N(0, 2 / num_blocks / sqrt(dim)) (GPT-NeoX output projections)."""
    return nn.init.normal_(param, mean=0.0, std=2 / num_blocks / math.sqrt(dim))


def bias_linspace_init_(param: torch.Tensor, start: float, end: float) -> torch.Tensor:
    with torch.no_grad():
        return param.copy_(torch.linspace(start, end, param.shape[0]))


# ---------------------------------------------------------------- norms


class LayerNorm(nn.Module):
    """LayerNorm over the last dim; `weight` is an offset (effective scale 1 + weight), bias optional."""

    def __init__(self, ndim: int, weight: bool = True, bias: bool = False, eps: float = 1e-5):
        super().__init__()
        self.ndim, self.eps = ndim, eps
        self.weight = nn.Parameter(torch.zeros(ndim)) if weight else None
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    @property
    def weight_proxy(self) -> torch.Tensor | None:
        return None if self.weight is None else 1.0 + self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.ndim,), self.weight_proxy, self.bias, self.eps)

    def reset_parameters(self) -> None:
        for p in (self.weight, self.bias):
            if p is not None:
                nn.init.zeros_(p)


class MultiHeadLayerNorm(LayerNorm):
    """Per-head LayerNorm; `ndim = NH * DH`. `forward` takes (B, NH, S, DH) like the reference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, NH, S, DH) -> (B, NH, S, DH)
        return self.forward_heads_last(x.transpose(1, 2)).view(x.shape[0], x.shape[2], x.shape[1], -1).transpose(1, 2)

    def forward_heads_last(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, NH, DH), any strides -> (B, S, NH * DH): the layout the mLSTM layer consumes."""
        B, S, NH, DH = x.shape
        y = F.layer_norm(x, (DH,), eps=self.eps).reshape(B, S, NH * DH)  # group_norm with NH groups
        if self.weight is not None:
            y = y * self.weight_proxy
        if self.bias is not None:
            y = y + self.bias
        return y


# ---------------------------------------------------------------- convolution


def _shifted_ranges(S: int, K: int, left: int):
    """For tap j: output rows [lo, hi) read input rows [lo + j - left, hi + j - left) (zero padding elsewhere)."""
    return [(j, max(0, left - j), min(S, S + left - j)) for j in range(K)]


class _DepthwiseConvFn(torch.autograd.Function):
    """y[b, t, c] = bias[c] + sum_j w[c, j] * x[b, t + j - left, c] (zero outside) on (B, S, C), no transposes
    and no padded copy; optionally followed by a fused SiLU. Hand-written backward. The output (and what is kept
    for backward) has x's dtype: bf16 activations under autocast stay bf16, as nn.Conv1d's would."""

    @staticmethod
    def forward(ctx, x, weight, bias, left: int, silu: bool):
        B, S, C = x.shape
        K = weight.shape[-1]
        w = weight.reshape(C, K).t()  # (K, C)
        y = x * w[left] if bias is None else torch.addcmul(bias, x, w[left])
        for j, lo, hi in _shifted_ranges(S, K, left):
            if j != left and hi > lo:
                y[:, lo:hi].addcmul_(x[:, lo + j - left : hi + j - left], w[j])
        y = y.to(x.dtype)
        ctx.save_for_backward(x, weight, y if silu else None)
        ctx.left, ctx.has_bias, ctx.silu = left, bias is not None, silu
        return F.silu(y) if silu else y

    @staticmethod
    def backward(ctx, dy):
        x, weight, pre = ctx.saved_tensors
        dy = dy.contiguous()  # gradients arriving through transposed views would make every pass below strided
        if ctx.silu:
            dy = torch.ops.aten.silu_backward(dy, pre)
        C, K = weight.shape[0], weight.shape[-1]
        S, left = dy.shape[1], ctx.left
        w = weight.reshape(C, K).t()
        dx = dw = db = None
        taps = _shifted_ranges(S, K, left)
        if ctx.needs_input_grad[0]:  # dx[u] = sum_j w[j] dy[u - j + left]
            dx = dy * w[left]
            for j, lo, hi in taps:
                if j != left and hi > lo:
                    dx[:, lo + j - left : hi + j - left].addcmul_(dy[:, lo:hi], w[j])
        if ctx.needs_input_grad[1]:
            cols = [
                (x[:, lo + j - left : hi + j - left] * dy[:, lo:hi]).sum((0, 1)) if hi > lo else dy.new_zeros(C)
                for j, lo, hi in taps
            ]
            dw = torch.stack(cols, dim=1).view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.sum((0, 1))
        return dx, dw, db, None, None


class CausalConv1d(nn.Module):
    """Depthwise conv over time on (B, S, F). `causal=False` uses 'same' padding (left (K-1)//2)."""

    def __init__(self, feature_dim: int, kernel_size: int = 4, bias: bool = True, causal: bool = True):
        super().__init__()
        self.feature_dim, self.kernel_size, self.causal = feature_dim, kernel_size, causal
        self.conv = (
            nn.Conv1d(feature_dim, feature_dim, kernel_size, padding=kernel_size - 1, groups=feature_dim, bias=bias)
            if kernel_size > 0
            else None
        )
        self.left_pad = kernel_size - 1 if causal else (kernel_size - 1) // 2

    def reset_parameters(self) -> None:
        if self.conv is not None:
            self.conv.reset_parameters()

    def forward(self, x: torch.Tensor, silu: bool = False) -> torch.Tensor:
        """(B, S, F) -> (B, S, F); `silu=True` returns SiLU(conv(x)) through one fused op."""
        if self.conv is None:
            return F.silu(x) if silu else x
        return _DepthwiseConvFn.apply(x, self.conv.weight, self.conv.bias, self.left_pad, silu)


def depthwise_conv1d_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool = True):
    """Plain `F.conv1d` reference for `CausalConv1d` (tests)."""
    K = weight.shape[-1]
    left = K - 1 if causal else (K - 1) // 2
    xp = F.pad(x.transpose(1, 2), (left, K - 1 - left))
    return F.conv1d(xp, weight, bias, groups=x.shape[-1]).transpose(1, 2)


# ---------------------------------------------------------------- headwise projection


class LinearHeadwiseExpand(nn.Module):
    """Block-diagonal linear map: features split into `num_heads` blocks, each projected by its own matrix."""

    def __init__(self, in_features: int, num_heads: int, bias: bool = False, out_features: int | None = None):
        super().__init__()
        out_features = in_features if out_features is None else out_features
        assert in_features % num_heads == 0 and out_features % num_heads == 0
        self.in_features, self.num_heads, self.out_features = in_features, num_heads, out_features
        self.weight = nn.Parameter(torch.empty(num_heads, out_features // num_heads, in_features // num_heads))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, mean=0.0, std=math.sqrt(2 / 5 / self.weight.shape[-1]))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return headwise_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_heads={self.num_heads}, bias={self.bias is not None}"


def headwise_block_weights(weight: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(NHp, dout, din) blocks -> (num_groups, NHp/num_groups * dout, NHp/num_groups * din): each group's blocks
    on a block diagonal. Grouping the tiny blocks per cell head turns the projection into a few dense matmuls."""
    NHp, dout, din = weight.shape
    P = NHp // num_groups
    eye = torch.eye(P, dtype=weight.dtype, device=weight.device)
    return torch.einsum("gpod,pq->gpoqd", weight.view(num_groups, P, dout, din), eye).reshape(
        num_groups, P * dout, P * din
    )


def headwise_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """(..., NH * din) x (NH, dout, din) -> (..., NH * dout); a batched matmul over the blocks."""
    lead = x.shape[:-1]
    NH, dout, din = weight.shape
    y = torch.bmm(x.reshape(-1, NH, din).transpose(0, 1), weight.transpose(1, 2))  # (NH, N, dout)
    y = y.transpose(0, 1).reshape(*lead, NH * dout)
    return y if bias is None else y + bias


# ---------------------------------------------------------------- position embeddings


def rope_cos_sin(head_dim: int, length: int, theta: float = 500000.0, device=None):
    """(length, head_dim // 2) cos and sin tables, llama2.c `precompute_freqs_cis` convention."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), freqs)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2j], x[2j+1]) of the last dim; x (..., S, DH), cos/sin (S, DH/2).

    Computed in fp32 (or fp64) as one complex product, the llama2.c/Meta `apply_rotary_emb` math.
    """
    work = torch.promote_types(x.dtype, torch.float32)
    xc = torch.view_as_complex(x.to(work).unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(xc * torch.complex(cos.to(work), sin.to(work))).flatten(-2).type_as(x)


class ScaledSinusoidalEmbedding(nn.Module):
    """Absolute sinusoidal embedding [sin, cos] times a learnable scalar `scale` (init dim**-0.5)."""

    def __init__(self, dim: int, theta: float = 100_000.0):
        super().__init__()
        assert dim % 2 == 0
        self.scale = nn.Parameter(torch.ones(1) * dim**-0.5)
        half = dim // 2
        self.register_buffer("inv_freq", theta ** -(torch.arange(half).float() / half), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (S, D)
        pos = torch.arange(x.shape[1], device=x.device, dtype=self.inv_freq.dtype)
        emb = torch.outer(pos, self.inv_freq)
        return torch.cat((emb.sin(), emb.cos()), dim=-1) * self.scale

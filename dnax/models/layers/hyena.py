"""The Hyena operator of HyenaDNA, module for module the reference `src/models/sequence/hyena.py`
(HazyResearch/hyena-dna at its release, the code the released HyenaDNA checkpoints were trained with).

Names, shapes and registration order follow the reference, so state_dict keys (and their order) match:

    in_proj.{weight, bias}           ((order + 1) D, D)   note: the reference registers out_proj first
    out_proj.{weight, bias}          (D, D)
    short_filter.{weight, bias}      ((order + 1) D, 1, 3) depthwise causal conv (k = `short_filter_order`)
    filter_fn.bias                   ((order - 1) D,)      the long convolution's skip term "D"
    filter_fn.pos_emb.{z, t}         (1, l_max, emb_dim), (1, l_max, 1); buffers when `lr_pos_emb == 0`
    filter_fn.implicit_filter.{0,2,4}.{weight,bias}, .6.weight   the filter MLP (emb_dim -> order -> ... -> D)
    filter_fn.implicit_filter.{1,3,5}.freq   (1, order)   one shared `Sin` module, listed under every index
    filter_fn.modulation.deltas      (1, 1, (order - 1) D)  a buffer when `modulation_lr == 0`

Only the configuration every HyenaDNA run uses is implemented: one head, one block, inner factor 1, no outer
mixing, no post-order FFN, identity output activation, no filter normalisation.

Precision (dnax choice): the implicit filter runs in the parameters' dtype with autocast off, and the FFT
convolution in fp32 (at least); the reference computes the filter MLP in the autocast dtype, then promotes to fp32
in the modulation.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from dnax.models.layers.common import _DepthwiseConvFn  # causal depthwise conv on (B, L, C), own backward


def fftconv(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Causal long convolution y[..., c, t] = sum_{s <= t} k[c, t - s] u[..., c, s] + D[c] u[..., c, t].

    u (..., C, L), k (C, L), D (C,). FFT of size 2L, so the circular convolution equals the linear one on the first
    L outputs; computed in fp32 (fp64 stays fp64), returned in u's dtype. The reference's `fftconv_ref`.
    """
    L = u.shape[-1]
    work = torch.promote_types(torch.promote_types(u.dtype, k.dtype), torch.float32)
    n = 2 * L
    k_f = torch.fft.rfft(k.to(work), n=n) / n
    u_f = torch.fft.rfft(u.to(work), n=n)
    y = torch.fft.irfft(u_f * k_f, n=n, norm="forward")[..., :L]
    return (y + u.to(work) * D.to(work).unsqueeze(-1)).to(u.dtype)


def _register(module: nn.Module, name: str, tensor: torch.Tensor, lr: float | None, wd: float = 0.0) -> None:
    """The reference `OptimModule.register`: a buffer when lr == 0, else a parameter with its own optimizer
    settings in `_optim` (read by `dnax.train.param_groups`)."""
    if lr == 0.0:
        module.register_buffer(name, tensor)
    else:
        module.register_parameter(name, nn.Parameter(tensor))
        getattr(module, name)._optim = {**({} if lr is None else {"lr": lr}), "weight_decay": wd}


class Sin(nn.Module):
    """sin(freq * x) with a learnable per-feature frequency (init `w`)."""

    def __init__(self, dim: int, w: float = 10.0):
        super().__init__()
        self.w = w
        self.freq = nn.Parameter(w * torch.ones(1, dim))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.freq.fill_(self.w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


def positional_features(emb_dim: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The filter's input features: z (1, seq_len, emb_dim) = [t, Re exp(-i f w), Im exp(-i f w)] over
    (emb_dim - 1) // 2 bands f = linspace(1e-4, bands - 1), w = 2 pi p / seq_len; t (1, seq_len, 1) in [0, 1]."""
    if emb_dim % 2 == 0 or emb_dim < 3:
        raise ValueError(f"Hyena filter emb_dim must be odd and >= 3 (time, cos, sin), got {emb_dim}")
    bands = (emb_dim - 1) // 2
    t = torch.linspace(0, 1, seq_len)[None, :, None]
    w = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[None, :, None] / seq_len
    f = torch.linspace(1e-4, bands - 1, bands)[None, None]
    z = torch.exp(-1j * f * w)
    return torch.cat([t, z.real, z.imag], dim=-1), t


class PositionalEmbedding(nn.Module):
    """Complex-exponential positional features `z` and normalised time `t` for the implicit filter."""

    def __init__(self, emb_dim: int, seq_len: int, lr_pos_emb: float = 0.0):
        super().__init__()
        self.emb_dim, self.seq_len = emb_dim, seq_len
        z, t = positional_features(emb_dim, seq_len)
        _register(self, "z", z, lr=lr_pos_emb)
        _register(self, "t", t, lr=0.0)

    def reset_parameters(self) -> None:
        z, t = positional_features(self.emb_dim, self.seq_len)
        with torch.no_grad():
            self.z.copy_(z)
            self.t.copy_(t)

    def forward(self, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z[:, :L], self.t[:, :L]


def modulation_deltas(d_model: int, fast_decay_pct: float, slow_decay_pct: float, target: float) -> torch.Tensor:
    """Per-channel decay rates log(target)/slow_decay_pct ... log(target)/fast_decay_pct, shape (1, 1, d_model)."""
    return torch.linspace(math.log(target) / slow_decay_pct, math.log(target) / fast_decay_pct, d_model)[None, None]


class ExponentialModulation(nn.Module):
    """Window on the filter: h * (exp(-t |delta_c|) + shift)."""

    def __init__(self, d_model: int, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5, target: float = 1e-2,
                 modulation_lr: float = 0.0, shift: float = 0.0):
        super().__init__()
        self.shift = shift
        self._deltas_args = (d_model, fast_decay_pct, slow_decay_pct, target)
        _register(self, "deltas", modulation_deltas(*self._deltas_args), lr=modulation_lr)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.deltas.copy_(modulation_deltas(*self._deltas_args))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * (torch.exp(-t * self.deltas.abs()) + self.shift)


class HyenaFilter(nn.Module):
    """Implicit long filter: MLP with Sin activations over positional features, exponentially modulated.

    Args:
        d_model: channels of the filter ((order - 1) * D in the operator).
        emb_dim: positional feature size (odd, >= 3); order: width of the MLP; num_inner_mlps: hidden layers.
        seq_len: filter length (the operator's `l_max`); w: initial Sin frequency.
        lr / wd: optimizer settings of the MLP weights and frequencies (`_optim`); lr None = the optimizer's lr.
        lr_pos_emb: lr of `z` (0: buffer); modulate, shift, fast/slow_decay_pct, target, modulation_lr: the window.
    """

    def __init__(self, d_model: int, emb_dim: int = 5, order: int = 64, seq_len: int = 1024, w: float = 10.0,
                 lr: float | None = None, wd: float = 0.0, lr_pos_emb: float = 0.0, num_inner_mlps: int = 2,
                 modulate: bool = True, shift: float = 0.0, fast_decay_pct: float = 0.3,
                 slow_decay_pct: float = 1.5, target: float = 1e-2, modulation_lr: float = 0.0):
        super().__init__()
        self.d_model, self.seq_len, self.modulate = d_model, seq_len, modulate
        self.bias = nn.Parameter(torch.randn(d_model))
        act = Sin(order, w=w)  # one module shared by every activation slot, as in the reference
        layers: list[nn.Module] = [nn.Linear(emb_dim, order), act]
        for _ in range(num_inner_mlps):
            layers += [nn.Linear(order, order), act]
        layers.append(nn.Linear(order, d_model, bias=False))
        self.pos_emb = PositionalEmbedding(emb_dim, seq_len, lr_pos_emb)
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(d_model, fast_decay_pct, slow_decay_pct, target, modulation_lr, shift)
        for p in self.implicit_filter.parameters():
            p._optim = {**({} if lr is None else {"lr": lr}), "weight_decay": wd}

    def reset_parameters(self) -> None:
        """The filter's own draw (bias ~ N(0, 1)); submodules reset themselves."""
        with torch.no_grad():
            self.bias.normal_()

    def filter(self, L: int) -> torch.Tensor:
        """(L, d_model) filter taps for the first L positions, in the parameters' dtype (autocast off)."""
        z, t = self.pos_emb(L)
        with torch.autocast(z.device.type, enabled=False):
            h = self.implicit_filter(z.to(self.bias.dtype))
            if self.modulate:
                h = self.modulation(t.to(h.dtype), h)
        return h[0]


class HyenaOperator(nn.Module):
    """Order-N Hyena: in_proj -> short causal depthwise conv -> split into x_0..x_{N-1}, v ->
    v = fftconv(v * x_i, h_i) for i = N-1..1 -> out_proj(v * x_0). Input (B, L, D), L <= l_max."""

    def __init__(self, d_model: int, l_max: int, order: int = 2, filter_order: int = 64,
                 short_filter_order: int = 3, dropout: float = 0.0, **filter_args):
        super().__init__()
        if order < 2:
            raise ValueError(f"Hyena order must be >= 2, got {order}")
        self.d_model, self.l_max, self.order = d_model, l_max, order
        width = d_model * (order + 1)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(d_model, d_model)
        self.in_proj = nn.Linear(d_model, width)
        self.short_filter = nn.Conv1d(width, width, short_filter_order, groups=width, padding=short_filter_order - 1)
        self.filter_fn = HyenaFilter(d_model * (order - 1), order=filter_order, seq_len=l_max, **filter_args)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        L = u.shape[-2]
        if L > self.l_max:
            raise ValueError(f"HyenaOperator: sequence length {L} exceeds l_max={self.l_max} (the implicit filter "
                             "is defined on l_max positions); build the model with a larger max_length")
        K = self.short_filter.kernel_size[0]
        # the reference's Conv1d(padding=K-1)[..., :L], computed on (B, L, C) without padding (~30x faster on CPU)
        uc = _DepthwiseConvFn.apply(self.in_proj(u), self.short_filter.weight, self.short_filter.bias, K - 1, False)
        uc = uc.transpose(1, 2)  # (B, (order+1) D, L)
        *x, v = uc.split(self.d_model, dim=1)
        O = self.order - 1
        k = self.filter_fn.filter(L).view(L, self.d_model, O).permute(2, 1, 0)  # "(v o)" channel layout -> (O, D, L)
        bias = self.filter_fn.bias.view(self.d_model, O).t()  # (O, D)
        for o, x_i in enumerate(reversed(x[1:])):
            v = fftconv(self.dropout(v * x_i), k[o], bias[o])
        return self.out_proj((v * x[0]).transpose(1, 2))

"""Mamba2 mixer, parameter-for-parameter `mamba_ssm.modules.mamba2.Mamba2`, that runs on any device.

    in_proj.weight   (2E + 2GN + H, D)   [z, xBC, dt]   E = expand * D (d_ssm = E), G = ngroups, N = d_state,
    conv1d.weight    (E + 2GN, 1, K)     conv1d.bias                   H = E / headdim heads
    dt_bias (H,)   A_log (H,)   D (H,) or (E,) with D_has_hdim   norm.weight (E,)   out_proj.weight (D, E)

The constructor draws random numbers in mamba_ssm's order, so under one seed it yields mamba_ssm's weights (and its
state dicts load as they are). Forward, as mamba_ssm's non-fused path: in_proj -> causal depthwise conv + SiLU on
(x, B, C) -> the SSD scan per head, h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t + D x_t with
dt = softplus(dt + dt_bias) clamped to dt_limit -> gated RMSNorm (norm(y * silu(z)) per group of E / G channels;
or y * silu(z) without rmsnorm) -> out_proj. The scan is `ssd_scan` (chunked SSD in PyTorch: quadratic inside
chunks of `chunk_size`, a recurrence over chunk states between them; autograd), or mamba_ssm's Triton
`mamba_chunk_scan_combined` on CUDA where mamba_ssm imports. The gated MLP branch (`d_ssm < E`) is supported;
inference caches, sequence/tensor parallelism and variable-length packing are not.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Mamba2", "ssd_scan"]


def _segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T) with [i, j] = sum_{k=j+1}^{i} x_k for j <= i, -inf above the diagonal (summed, not
    differenced, so long chunks keep their precision)."""
    T = x.shape[-1]
    x = x.unsqueeze(-1).expand(*x.shape, T)
    strict = torch.ones(T, T, dtype=torch.bool, device=x.device).tril_(-1)
    out = x.masked_fill(~strict, 0.0).cumsum(-2)
    return out.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril_(), float("-inf"))


def ssd_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             chunk_size: int = 256) -> torch.Tensor:
    """Chunked SSD scan: x (b, L, H, P), dt (b, L, H) (final step sizes), A (H,), B, C (b, L, G, N) with G dividing
    H -> y (b, L, H, P) without the D skip. Any L (padded to whole chunks with dt = 0, which leaves the state
    unchanged); fp32 or fp64."""
    b, L, H, P = x.shape
    G = B.shape[2]
    B, C = (t.repeat_interleave(H // G, dim=2) for t in (B, C))  # (b, L, H, N)
    T = min(chunk_size, L)
    pad = -L % T
    if pad:
        x, dt, B, C = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (x, dt, B, C))
    c = x.shape[1] // T
    xs = (x * dt.unsqueeze(-1)).view(b, c, T, H, P)
    B, C = B.view(b, c, T, H, -1), C.view(b, c, T, H, -1)
    a = (dt * A).view(b, c, T, H).permute(0, 3, 1, 2)                      # (b, H, c, T) log decays
    a_cum = a.cumsum(-1)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, torch.exp(_segsum(a)), xs)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, torch.exp(a_cum[..., -1:] - a_cum), xs)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    chunk_decay = torch.exp(_segsum(F.pad(a_cum[..., -1], (1, 0))))       # (b, H, c + 1, c + 1)
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)[:, :-1]
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(a_cum))
    return (y_diag + y_off).reshape(b, c * T, H, P)[:, :L]


@functools.lru_cache(maxsize=None)
def _mamba_ssm_chunk_scan():
    """mamba_ssm's Triton `mamba_chunk_scan_combined` where it imports on a CUDA machine, else None. Cached."""
    if not torch.cuda.is_available():
        return None
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except ImportError:
        return None
    return mamba_chunk_scan_combined


class Mamba2(nn.Module):
    """Mamba2 mixer (B, L, D) -> (B, L, D); constructor arguments as mamba_ssm's (minus device/dtype and the
    parallelism ones; `use_mem_eff_path` is accepted and ignored)."""

    def __init__(self, d_model: int, d_state: int = 128, d_conv: int = 4, conv_init: float | None = None,
                 expand: int = 2, headdim: int = 64, d_ssm: int | None = None, ngroups: int = 1,
                 A_init_range: tuple[float, float] = (1, 16), D_has_hdim: bool = False, rmsnorm: bool = True,
                 norm_before_gate: bool = False, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_limit: tuple[float, float] = (0.0, float("inf")),
                 bias: bool = False, conv_bias: bool = True, chunk_size: int = 256, use_mem_eff_path: bool = True,
                 layer_idx: int | None = None):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        self.headdim, self.ngroups = headdim, ngroups
        self.d_ssm = self.d_inner if d_ssm is None else d_ssm
        if self.d_ssm % headdim or self.d_ssm % ngroups:
            raise ValueError(f"Mamba2: d_ssm {self.d_ssm} must be divisible by headdim {headdim} and ngroups "
                             f"{ngroups}")
        if not 0 < A_init_range[0] <= A_init_range[1]:
            raise ValueError(f"Mamba2: A_init_range must be 0 < low <= high, got {A_init_range}")
        self.nheads = self.d_ssm // headdim
        self.D_has_hdim, self.rmsnorm, self.norm_before_gate = D_has_hdim, rmsnorm, norm_before_gate
        self.dt_min, self.dt_max, self.dt_init_floor, self.dt_limit = dt_min, dt_max, dt_init_floor, dt_limit
        self.A_init_range, self.conv_init = A_init_range, conv_init
        self.chunk_size, self.layer_idx = chunk_size, layer_idx
        # module creation order = mamba_ssm's random-draw order
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * ngroups * d_state + self.nheads, bias=bias)
        conv_dim = self.d_ssm + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1, bias=conv_bias)
        self.dt_bias = nn.Parameter(torch.empty(self.nheads))
        self.A_log = nn.Parameter(torch.empty(self.nheads))
        self.D = nn.Parameter(torch.empty(self.d_ssm if D_has_hdim else self.nheads))
        self._init_conv_dt_A_D()
        self.norm = _GatedRMSNorm(self.d_ssm, group_size=self.d_ssm // ngroups,
                                  norm_before_gate=norm_before_gate) if rmsnorm else None
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True

    def _init_conv_dt_A_D(self) -> None:
        """mamba_ssm's init, in its draw order: conv (when conv_init), dt (log-uniform in [dt_min, dt_max], floored,
        stored as softplus^-1), A uniform in A_init_range (stored as log), D = 1."""
        with torch.no_grad():
            if self.conv_init is not None:
                nn.init.uniform_(self.conv1d.weight, -self.conv_init, self.conv_init)
            dt = torch.exp(torch.rand(self.nheads) * (math.log(self.dt_max) - math.log(self.dt_min))
                           + math.log(self.dt_min)).clamp(min=self.dt_init_floor)
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            self.A_log.copy_(torch.empty(self.nheads).uniform_(*self.A_init_range).log())
            self.D.fill_(1.0)

    def reset_parameters(self) -> None:
        self.in_proj.reset_parameters()
        self.conv1d.reset_parameters()
        self._init_conv_dt_A_D()
        if self.norm is not None:
            self.norm.reset_parameters()
        self.out_proj.reset_parameters()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        b, L, _ = u.shape
        zxbcdt = self.in_proj(u)
        d_mlp = (zxbcdt.shape[-1] - 2 * self.d_ssm - 2 * self.ngroups * self.d_state - self.nheads) // 2
        z0, x0, z, xBC, dt = torch.split(
            zxbcdt, [d_mlp, d_mlp, self.d_ssm, self.d_ssm + 2 * self.ngroups * self.d_state, self.nheads], dim=-1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, B, C = torch.split(xBC, [self.d_ssm, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        x = x.reshape(b, L, self.nheads, self.headdim)
        B, C = (t.reshape(b, L, self.ngroups, self.d_state) for t in (B, C))
        A = -torch.exp(self.A_log.float())
        D = self.D.view(self.nheads, self.headdim) if self.D_has_hdim else self.D
        kernel = _mamba_ssm_chunk_scan() if u.is_cuda else None
        if kernel is not None:
            limit = {} if self.dt_limit == (0.0, float("inf")) else {"dt_limit": self.dt_limit}
            y = kernel(x, dt, A, B, C, chunk_size=self.chunk_size, D=D, z=None, dt_bias=self.dt_bias,
                       dt_softplus=True, **limit)
        else:
            cdt = torch.float64 if x.dtype == torch.float64 else torch.float32
            step = F.softplus(dt.to(cdt) + self.dt_bias.to(cdt)).clamp(*self.dt_limit)
            y = ssd_scan(x.to(cdt), step, A.to(cdt), B.to(cdt), C.to(cdt), self.chunk_size)
            y = (y + x.to(cdt) * (D.to(cdt) if self.D_has_hdim else D.to(cdt)[:, None])).to(x.dtype)
        y = y.reshape(b, L, self.d_ssm)
        y = self.norm(y, z) if self.norm is not None else y * F.silu(z)
        if d_mlp > 0:
            y = torch.cat([F.silu(z0) * x0, y], dim=-1)
        return self.out_proj(y)


class _GatedRMSNorm(nn.Module):
    """mamba_ssm's gated RMSNorm (`layernorm_gated.RMSNorm`): norm(x * silu(z)) (or norm(x) * silu(z) with
    `norm_before_gate`), the RMS taken per group of `group_size` channels, computed in fp32. Parameter: weight."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, group_size: int | None = None,
                 norm_before_gate: bool = True):
        super().__init__()
        self.eps, self.group_size, self.norm_before_gate = eps, group_size or hidden_size, norm_before_gate
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        dtype = x.dtype
        x = x.float() if dtype != torch.float64 else x
        if z is not None and not self.norm_before_gate:
            x = x * F.silu(z.to(x.dtype))
        g = x.unflatten(-1, (-1, self.group_size))
        out = (g * torch.rsqrt(g.square().mean(-1, keepdim=True) + self.eps)).flatten(-2) * self.weight.to(x.dtype)
        if z is not None and self.norm_before_gate:
            out = out * F.silu(z.to(x.dtype))
        return out.to(dtype)

"""Mamba (v1) mixer, parameter-for-parameter `mamba_ssm.modules.mamba_simple.Mamba`, plus its LM-level init.

    in_proj.weight   (2E, D)      [bias (2E,) with bias=True]      E = expand * D, R = dt_rank, N = d_state
    conv1d.weight    (E, 1, K)    conv1d.bias (E,)                 depthwise causal conv, K = d_conv
    x_proj.weight    (R + 2N, E)                                    -> dt, B, C
    dt_proj.weight   (E, R)       dt_proj.bias (E,)                 bias is the softplus-inverse of dt in [dt_min, dt_max]
    A_log            (E, N)       log(1..N) per channel (S4D-real), A = -exp(A_log)
    D                (E,)         skip, ones
    out_proj.weight  (D, E)       [bias (D,)]

`A_log` and `D` carry `_no_weight_decay = True` like the reference: `dnax.train.param_groups` trains them without
weight decay, as the reference's `add_optimizer_hooks` does.

The constructor draws random numbers in the reference's order, so under one seed it yields the reference's
weights; `mamba_lm_init_` is the LM-level re-init (`mixer_seq_simple._init_weights`, also Caduceus's).

Forward: on CPU (and wherever mamba_ssm's compiled kernels are missing) in_proj -> causal depthwise conv + SiLU ->
x_proj / dt_proj -> `dnax.models.layers.selective_scan.selective_scan` (the reference's `selective_scan_ref`
semantics) gated by SiLU(z) -> out_proj. On CUDA with `use_fast_path` and mamba_ssm + causal_conv1d importable,
the reference's fused `mamba_inner_fn`; on CUDA with only mamba_ssm, its `selective_scan_fn` kernel; on CUDA
without mamba_ssm, dnax's Triton scan (`kernels.selective_scan`, nothing to build) where triton imports.
`scan_backend="triton"` runs the Triton scan whatever is installed, `"torch"` the PyTorch scan.
`scan_fn` replaces the scan (on any device; no fused path then) by any function with `selective_scan_ref`'s
signature (e.g. that one, to time what the reference runs on CPU: `benchmarks.train_step` reference rows).
`mamba2_mixer` builds a Mamba2 mixer (`dnax.models.layers.mamba2`).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dnax.models.layers.common import _DepthwiseConvFn, auto_picks_triton, triton_runs_on
from dnax.models.layers.mamba2 import Mamba2
from dnax.models.layers.selective_scan import selective_scan


@functools.lru_cache(maxsize=None)
def cuda_kernels() -> dict:
    """mamba_ssm's CUDA entry points that import here: {"selective_scan_fn", "mamba_inner_fn", "causal_conv1d_fn"}
    (each possibly None). Empty without CUDA. Cached."""
    if not torch.cuda.is_available():
        return {}
    try:
        import selective_scan_cuda  # compiled extension; mamba_ssm imports it unguarded

        if not hasattr(selective_scan_cuda, "fwd"):  # a CPU test stand-in
            return {}
        from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn, selective_scan_fn
    except ImportError:
        return {}
    try:
        from causal_conv1d import causal_conv1d_fn
    except ImportError:
        causal_conv1d_fn = None
    return {"selective_scan_fn": selective_scan_fn, "mamba_inner_fn": mamba_inner_fn,
            "causal_conv1d_fn": causal_conv1d_fn}


class RMSNorm(nn.Module):
    """`mamba_ssm.ops.triton.layer_norm.RMSNorm`: x / sqrt(mean(x^2) + eps) * weight, computed in fp32 (as the
    Triton kernel; equal to `rms_norm_ref` in fp32). `bias` is None, as there."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps) * self.weight.float()).to(x.dtype)


class Mamba(nn.Module):
    """Selective SSM mixer (B, L, D) -> (B, L, D); constructor arguments as `mamba_simple.Mamba` (minus
    device/dtype) plus `chunk_size` for the CPU scan (None: the scan's default), `scan_backend` ("auto": on CUDA
    mamba_ssm's CUDA kernels where they import, else dnax's Triton scan where it imports, else dnax's PyTorch scan,
    which is what CPU tensors get; "torch": dnax's PyTorch scan; "triton": dnax's Triton scan,
    `kernels.selective_scan`) and `scan_fn`, a replacement for the scan with `selective_scan_ref`'s signature
    (None: dnax's). `scan_backend` and `scan_fn` are plain attributes, settable after construction."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: float = 2, dt_rank="auto",
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init: str = "random", dt_scale: float = 1.0,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 use_fast_path: bool = True, layer_idx: int | None = None,
                 chunk_size: int | None = None, scan_fn: Callable | None = None,
                 scan_backend: Literal["auto", "torch", "triton"] = "auto"):
        super().__init__()
        if scan_backend not in ("auto", "torch", "triton"):
            raise ValueError(f"Mamba scan_backend must be 'auto', 'torch' or 'triton', got {scan_backend!r}")
        if dt_init not in ("constant", "random"):
            raise ValueError(f"Mamba dt_init must be 'constant' or 'random', got {dt_init!r}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.dt_min, self.dt_max, self.dt_init, self.dt_scale = dt_min, dt_max, dt_init, dt_scale
        self.dt_init_floor = dt_init_floor
        self.use_fast_path, self.layer_idx, self.chunk_size = use_fast_path, layer_idx, chunk_size
        self.scan_fn, self.scan_backend = scan_fn, scan_backend
        # module creation order = the reference's random-draw order
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self._init_dt_A_D()
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.dt_proj.bias._no_reinit = True  # kept by mamba_lm_init_

    def _init_dt_A_D(self) -> None:
        """dt_proj weight (uniform or constant, std dt_rank^-0.5 * dt_scale), dt bias = softplus^-1(dt) with
        log-uniform dt in [dt_min, dt_max] (floored), A_log = log(1..N), D = 1."""
        std = self.dt_rank ** -0.5 * self.dt_scale
        with torch.no_grad():
            if self.dt_init == "constant":
                nn.init.constant_(self.dt_proj.weight, std)
            else:
                nn.init.uniform_(self.dt_proj.weight, -std, std)
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(self.dt_max) - math.log(self.dt_min))
                           + math.log(self.dt_min)).clamp(min=self.dt_init_floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32)).expand_as(self.A_log))
            self.D.fill_(1.0)

    def reset_parameters(self) -> None:
        """Redraw every parameter as the constructor does (same order of draws)."""
        for m in (self.in_proj, self.conv1d, self.x_proj, self.dt_proj):
            m.reset_parameters()
        self._init_dt_A_D()
        self.out_proj.reset_parameters()

    # ------------------------------------------------------------------ forward

    def _fused_cuda(self, x: torch.Tensor) -> bool:
        k = cuda_kernels() if x.is_cuda and self.scan_backend == "auto" else {}
        return bool(self.use_fast_path and self.scan_fn is None and k.get("causal_conv1d_fn") is not None)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        if self._fused_cuda(hidden_states):
            return self._forward_fused_cuda(hidden_states)
        return self.out_proj(self.ssm(self.in_proj(hidden_states)))

    def scan_inputs(self, xz: torch.Tensor):
        """in_proj output (B, L, 2E) -> the scan's inputs in (B, L, .) layout: x, z, dt (B, L, E), B, C (B, L, N)
        and A (E, N)."""
        x, z = xz.chunk(2, dim=-1)
        x = _DepthwiseConvFn.apply(x, self.conv1d.weight, self.conv1d.bias, self.d_conv - 1, True)  # SiLU(conv)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # bias enters the scan as delta_bias
        return x, z, dt, B, C, -torch.exp(self.A_log.float())

    def ssm(self, xz: torch.Tensor) -> torch.Tensor:
        """Everything between the projections: in_proj output (B, L, 2E) -> gated scan output (B, L, E)."""
        x, z, dt, B, C, A = self.scan_inputs(xz)
        args = (x.transpose(1, 2), dt.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), self.D.float())
        kw = dict(z=z.transpose(1, 2), delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        kernel = self.cuda_scan_kernel(xz)
        if self.scan_fn is not None:
            y = self.scan_fn(*args, **kw)
        elif kernel is not None:  # the CUDA kernel wants contiguous (B, E, L) / (B, N, L)
            y = kernel(*(a.contiguous() for a in args), z=kw["z"].contiguous(), delta_bias=kw["delta_bias"],
                       delta_softplus=True)
        else:
            if self.chunk_size is not None:
                kw["chunk_size"] = self.chunk_size
            y = selective_scan(*args, **kw, triton=self.triton_scan(xz))
        return y.transpose(1, 2)

    def triton_scan(self, x: torch.Tensor) -> bool:
        """Whether this call runs dnax's Triton scan: scan_backend "triton" where Triton runs (on CPU tensors, the
        PyTorch scan, so a model trained with it evaluates on CPU), or "auto" on CUDA without mamba_ssm's kernel
        (4-5x the PyTorch scan's train step on an H100)."""
        if self.scan_backend == "auto":
            return self.cuda_scan_kernel(x) is None and auto_picks_triton(x)
        return self.scan_backend == "triton" and triton_runs_on(x)

    def cuda_scan_kernel(self, x: torch.Tensor) -> Callable | None:
        """mamba_ssm's `selective_scan_fn` where this call uses it (CUDA, scan_backend "auto", importable)."""
        return cuda_kernels().get("selective_scan_fn") if x.is_cuda and self.scan_backend == "auto" else None

    def _forward_fused_cuda(self, hidden_states: torch.Tensor) -> torch.Tensor:
        xz = F.linear(hidden_states, self.in_proj.weight, self.in_proj.bias).transpose(1, 2)  # (B, 2E, L)
        out = cuda_kernels()["mamba_inner_fn"](
            xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight, self.dt_proj.weight, self.out_proj.weight,
            self.out_proj.bias, -torch.exp(self.A_log.float()), None, None, self.D.float(),
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return out


def ssm_both_directions(fwd: Mamba, rev: Mamba, xz: torch.Tensor) -> torch.Tensor:
    """`fwd.ssm(xz) + rev.ssm(xz.flip(1)).flip(1)` with ONE dnax scan over both directions' channels (B and C as two
    groups): half the time steps of two calls, the same arithmetic per channel. CPU / no-kernel path."""
    pf, pr = fwd.scan_inputs(xz), rev.scan_inputs(xz.flip(1))
    cat = lambda a, b: torch.cat([a, b], dim=-1).transpose(1, 2)  # noqa: E731  (B, L, E) x 2 -> (B, 2E, L)
    groups = lambda a, b: torch.stack([a, b], dim=1).transpose(2, 3)  # noqa: E731  (B, L, N) x 2 -> (B, 2, N, L)
    y = selective_scan(cat(pf[0], pr[0]), cat(pf[2], pr[2]), torch.cat([pf[5], pr[5]]), groups(pf[3], pr[3]),
                       groups(pf[4], pr[4]), torch.cat([fwd.D.float(), rev.D.float()]), z=cat(pf[1], pr[1]),
                       delta_bias=torch.cat([fwd.dt_proj.bias.float(), rev.dt_proj.bias.float()]),
                       delta_softplus=True, **({"chunk_size": fwd.chunk_size} if fwd.chunk_size else {}),
                       triton=fwd.triton_scan(xz))
    y_fwd, y_rev = y.transpose(1, 2).chunk(2, dim=-1)
    return y_fwd + y_rev.flip(1)


def mamba2_mixer(d_model: int, layer_idx: int | None = None, **kwargs) -> nn.Module:
    """A Mamba2 mixer (`dnax.models.layers.mamba2.Mamba2`: mamba_ssm's parameters and init; runs on any device)."""
    return Mamba2(d_model, layer_idx=layer_idx, **kwargs)


def mamba_lm_init_(root: nn.Module, n_layer: int, initializer_range: float = 0.02,
                   rescale_prenorm_residual: bool = True, n_residuals_per_layer: int = 1) -> None:
    """`mamba_ssm.models.mixer_seq_simple._init_weights` applied over `root` (post-order, as `Module.apply`):
    Linear biases -> 0 (unless `_no_reinit`), Embedding ~ N(0, initializer_range), and every parameter named
    `out_proj.weight` / `fc2.weight` relative to some module -> kaiming_uniform(a=sqrt(5)) / sqrt(n_res * n_layer)."""

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=initializer_range)
        if rescale_prenorm_residual:
            for name, p in module.named_parameters():
                if name in ("out_proj.weight", "fc2.weight"):
                    nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                    with torch.no_grad():
                        p /= math.sqrt(n_residuals_per_layer * n_layer)

    root.apply(init)


def reset_module_parameters_(root: nn.Module) -> None:
    """Call `reset_parameters()` on every submodule of `root` that has one, a Mamba mixer as a whole (its own
    reset keeps the dt/A/D init that resetting its Linear children separately would undo)."""
    mixers = (Mamba, Mamba2)
    inside = {id(c) for m in root.modules() if isinstance(m, mixers) for c in m.modules() if c is not m}
    for m in root.modules():
        if m is not root and id(m) not in inside and hasattr(m, "reset_parameters"):
            m.reset_parameters()

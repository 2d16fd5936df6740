"""sLSTM layer (xLSTM v1, as forked by DNA-xLSTM) and the gated feed-forward of sLSTM blocks.

Parameter names, shapes and layouts are those of the reference checkpoints, which hold the CUDA backend's layout
(DNA-xLSTM's `xLSTMConfig` hard-codes `backend="cuda"`):

    conv1d.conv.weight, .bias           (D, 1, K), (D,)      depthwise conv (`conv1d_kernel_size > 0`)
    fgate/igate/zgate/ogate.weight      (NH, DH, DH)         headwise projections, no bias
    slstm_cell._recurrent_kernel_       (NH, DH, 4*DH)       [head, input unit, gate*DH + output unit]
    slstm_cell._bias_                   (NH*4*DH,)           [head, gate, unit]
    group_norm.weight                   (D,)                 used as `1 + weight` (zero-initialised)

Gate order is (i, f, z, o). Reference quirks reproduced on purpose (see shared/conformance/README.md, "sLSTM"):
  * the module named `fgate` feeds the input-gate slot and `igate` the forget-gate slot;
  * the recurrence starts from zero states with the stabiliser `m = i_raw` at the first step (the fast recurrence
    keeps its stabiliser at log N_t, which is `i_raw` at the first step; outputs do not depend on the stabiliser);
  * in the RC branch of an RCPS layer (`forward(..., rc_branch=True)`, passed by `RCPSWrapper`) the head axis of the
    cell output is flipped before the multi-head group norm and not flipped back. This makes the reference's RCPS
    sLSTM not RC-equivariant; `SLSTMLayer(rc_head_flip=False)` drops the quirk (exactly equivariant).

Backends: `vanilla` is a pure-PyTorch recurrence (one custom autograd Function over the whole sequence, with the
input projections precomputed and a hand-written backward), `triton` the same Function with its two time loops as
Triton kernels (`kernels.slstm_recurrence`: nothing to build; fp32; CUDA, or CPU under `TRITON_INTERPRET=1`),
`cuda` is the xlstm package's CUDA kernel (JIT-built, bfloat16 by default like the reference). `auto` picks `triton`
for CUDA inputs (head dims up to 64, where triton and `kernels/` import: 2.6x the `cuda` kernel's train step on an
H100), else `cuda` for CUDA inputs when that kernel builds, else `vanilla` (CPU). A `triton` layer given CPU tensors
runs the PyTorch loops, so a model trained that way evaluates on CPU.
`slstm_recurrence_ref` is the reference's per-step formulation, kept for tests.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from dnax.models.layers.common import (CausalConv1d, LinearHeadwiseExpand, MultiHeadLayerNorm,
                                       ScaledSinusoidalEmbedding, auto_picks_triton, small_init_, triton_runs_on,
                                       wang_init_)

Backend = Literal["auto", "vanilla", "triton", "cuda"]
BiasInit = Literal["powerlaw_blockdependent", "small_init", "standard", "zeros"]


# ----------------------------------------------------------------------------------------------------------------
# Layout converters: CUDA layout (stored) <-> xlstm vanilla backend layout.
# ----------------------------------------------------------------------------------------------------------------
def recurrent_kernel_cuda_to_vanilla(r: torch.Tensor) -> torch.Tensor:
    """(NH, DH_in, 4*DH_out) [head, in, gate*DH + out] -> (NH, 4*DH_out, DH_in) [head, gate*DH + out, in]."""
    nh, dh, g = r.shape
    return r.reshape(nh, dh, g // dh, dh).permute(0, 2, 3, 1).reshape(nh, g, dh)


def recurrent_kernel_vanilla_to_cuda(r: torch.Tensor) -> torch.Tensor:
    """Inverse of `recurrent_kernel_cuda_to_vanilla`."""
    nh, g, dh = r.shape
    return r.reshape(nh, g // dh, dh, dh).permute(0, 3, 1, 2).reshape(nh, dh, g)


def bias_cuda_to_vanilla(b: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(NH*4*DH,) ordered [head, gate, unit] -> ordered [gate, head, unit]."""
    return b.reshape(num_heads, 4, -1).transpose(0, 1).reshape(-1)


def bias_vanilla_to_cuda(b: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(NH*4*DH,) ordered [gate, head, unit] -> ordered [head, gate, unit]."""
    return b.reshape(4, num_heads, -1).transpose(0, 1).reshape(-1)


# ----------------------------------------------------------------------------------------------------------------
# Pure-PyTorch recurrence. wx: (S, NH, B, 4*DH) gate pre-activations incl. bias, per head ordered [gate, unit];
# r: (NH, DH, 4*DH) CUDA layout. Returns y: (S, NH, B, DH). Zero initial state.
# ----------------------------------------------------------------------------------------------------------------
def slstm_recurrence_ref(wx: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The reference vanilla backend's step function (xlstm `slstm_forward_pointwise`), step by step with autograd."""
    S, NH, B, G = wx.shape
    DH = G // 4
    y = c = n = m = wx.new_zeros(NH, B, DH)
    ys = []
    for t in range(S):
        raw = torch.baddbmm(wx[t], y, r)
        i, f, z, o = raw.view(NH, B, 4, DH).unbind(2)
        logfplusm = m + F.logsigmoid(f)
        m_new = i if bool(torch.all(n == 0.0)) else torch.max(i, logfplusm)
        one = torch.ones_like(i)
        ig = torch.minimum(torch.exp(i - m_new), one)
        fg = torch.minimum(torch.exp(logfplusm - m_new), one)
        c = fg * c + ig * torch.tanh(z)
        n = fg * n + ig
        y = torch.sigmoid(o) * c / n
        m = m_new
        ys.append(y)
    return torch.stack(ys)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Run the recurrence single-threaded on CPU: its step ops are tiny, intra-op threads (which some of them start
    even at this size) only add synchronisation, badly so when the cores are shared, and the vectorised parts are
    cheap next to the loop. Restores the thread count."""
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _forward_loop(wx: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward recurrence in PyTorch: (raw (S, NH, B, 4, DH) pre-activations Wx + b + Ry, y (S, NH, B, DH),
    hl (2, S, NH, B, DH): h = c/n and log N after each step). See `_SLSTMRecurrence` for the form."""
    S, NH, B, G = wx.shape
    DH = G // 4
    raw = wx.new_empty(S, NH, B, 4, DH)
    y = wx.new_empty(S, NH, B, DH)
    hl = wx.new_empty(2, S, NH, B, DH)
    raws, ys, hs, ls = raw.view(S, NH, B, G).unbind(0), y.unbind(0), hl[0].unbind(0), hl[1].unbind(0)
    ii, ff, zz, oo = (g.unbind(0) for g in raw.unbind(3))
    wxs = wx.unbind(0)
    y_prev = wx.new_zeros(NH, B, DH)
    for t in range(S):
        torch.baddbmm(wxs[t], y_prev, r, out=raws[t])
        if t == 0:
            ls[0].copy_(ii[0])
            torch.tanh(zz[0], out=hs[0])
        else:
            torch.logaddexp(F.logsigmoid(ff[t]).add_(ls[t - 1]), ii[t], out=ls[t])
            torch.lerp(hs[t - 1], torch.tanh(zz[t]), torch.sub(ii[t], ls[t]).exp_(), out=hs[t])
        y_prev = torch.mul(torch.sigmoid(oo[t]), hs[t], out=ys[t])
    return raw, y, hl


def _backward_loop(dy: torch.Tensor, r: torch.Tensor, raw: torch.Tensor, y: torch.Tensor,
                   hl: torch.Tensor) -> torch.Tensor:
    """The backward recurrence in PyTorch: d raw (S, NH, B, 4, DH) from dy and `_forward_loop`'s outputs.

    Coefficients of the reference's gradient formulas with m_t = log N_t (so n_t = 1 and c_t = h_t):
      dc = fg' dc' + so dy,  dn = fg' dn' - y dy      (' = from step t+1)
      di = ig (tz dc + dn),  df = fg (1 - sf) (h_prev dc + dn),  dz = ig (1 - tz^2) dc,  do = (1 - so) y dy
    """
    S, NH, B, _, DH = raw.shape
    G = 4 * DH
    h, logn = hl.unbind(0)
    i, f, z, o = raw.unbind(3)
    ig = torch.exp(i - logn)
    fg = F.logsigmoid(f)
    fg[1:].add_(logn[:-1]).sub_(logn[1:]).exp_()
    fg[0] = 0.0                                              # first step: c_prev = n_prev = 0
    tz = torch.tanh(z)
    so = torch.sigmoid(o)
    ab = raw.new_empty(S, NH, B, 2, DH)                      # (so, -y): dy -> (dc, dn)
    ab[:, :, :, 0] = so
    torch.neg(y, out=ab[:, :, :, 1])
    wc = raw.new_zeros(S, NH, B, 3, DH)                      # dc -> (di, df, dz)
    wn = raw.new_zeros(S, NH, B, 3, DH)                      # dn -> (di, df, dz)
    torch.mul(ig, tz, out=wc[:, :, :, 0])
    wn[:, :, :, 0] = ig
    torch.mul(fg, torch.sigmoid(f.neg()), out=wn[:, :, :, 1])
    torch.mul(wn[1:, :, :, 1], h[:-1], out=wc[1:, :, :, 1])
    torch.mul(ig, 1.0 - tz * tz, out=wc[:, :, :, 2])
    co = so.neg_().add_(1.0).mul_(y)                         # dy -> do
    del ig, tz, so
    draw = raw.new_empty(S, NH, B, 4, DH)
    rt = r.transpose(1, 2).contiguous()
    dys, abs_, wcs, wns, cos_ = dy.contiguous().unbind(0), ab.unbind(0), wc.unbind(0), wn.unbind(0), co.unbind(0)
    fgs = fg.unsqueeze(3).unbind(0)
    draw_ifz, draw_o = draw[:, :, :, :3].unbind(0), draw[:, :, :, 3].unbind(0)
    draws = draw.view(S, NH, B, G).unbind(0)
    dcn = raw.new_zeros(NH, B, 2, DH)                        # (dc, dn) carried backwards in place
    dc, dn = dcn[:, :, :1], dcn[:, :, 1:]
    dy_t = raw.new_empty(NH, B, DH)
    dy_t1 = dy_t.unsqueeze(2)
    for t in range(S - 1, -1, -1):
        if t == S - 1:
            dy_t.copy_(dys[t])
        else:
            torch.baddbmm(dys[t], draws[t + 1], rt, out=dy_t)
            dcn.mul_(fgs[t + 1])
        dcn.addcmul_(abs_[t], dy_t1)
        torch.mul(wcs[t], dc, out=draw_ifz[t]).addcmul_(wns[t], dn)
        torch.mul(cos_[t], dy_t, out=draw_o[t])
    return draw


class _SLSTMRecurrence(torch.autograd.Function):
    """Whole-sequence sLSTM recurrence; only the recurrent matmul and the pointwise cell update are in the loop.

    Same function as the reference, in the normalised form: with the stabiliser chosen as m_t = log N_t (N the
    unstabilised normaliser), n_t = 1 and c_t = h_t = c_t/n_t of the reference, so a step is
        log N_t = logaddexp(logsigmoid(f) + log N_{t-1}, i),  alpha = exp(i - log N_t),
        h_t = lerp(h_{t-1}, tanh(z), alpha),  y_t = sigmoid(o) * h_t,
    with h_0 = tanh(z), log N_0 = i at the first step (the reference's m = i_raw there). The outputs do not depend
    on the stabiliser, so the backward treats it as a constant (as the CUDA kernel does): six small ops per step,
    with per-step coefficients precomputed for the whole sequence and a (NH, B, 2, DH) carry for (dc, dn).

    `apply(wx, r, loops)`: `loops` is the (forward, backward) pair that runs the time loops, `_forward_loop` /
    `_backward_loop` or the Triton kernels' `kernels.slstm_recurrence.{forward_loop, backward_loop}` (same
    signatures and layouts); d R = sum_t y_{t-1}^T d raw_t is one batched matmul here for both.
    """

    @staticmethod
    def forward(ctx, wx: torch.Tensor, r: torch.Tensor, loops: tuple = (_forward_loop, _backward_loop)):
        with _one_cpu_thread(wx.device):
            raw, y, hl = loops[0](wx, r)
        ctx.save_for_backward(raw, y, hl, r)
        ctx.backward_loop = loops[1]
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        raw, y, hl, r = ctx.saved_tensors
        S, NH, B, _, DH = raw.shape
        G = 4 * DH
        with _one_cpu_thread(dy.device):
            draw = ctx.backward_loop(dy.contiguous(), r, raw, y, hl)
        dwx = draw.view(S, NH, B, G) if ctx.needs_input_grad[0] else None
        dr = None
        if ctx.needs_input_grad[1]:
            if S > 1:
                yt = y[:-1].permute(1, 3, 0, 2).reshape(NH, DH, (S - 1) * B)
                dg = draw[1:].view(S - 1, NH, B, G).transpose(0, 1).reshape(NH, (S - 1) * B, G)
                dr = torch.bmm(yt, dg)
            else:
                dr = torch.zeros_like(r)
        return dwx, dr, None


def slstm_recurrence(wx: torch.Tensor, r: torch.Tensor, triton: bool = False) -> torch.Tensor:
    """Fast sLSTM recurrence (same signature and math as `slstm_recurrence_ref`), computed in fp32: its time loops
    in PyTorch, or with `triton=True` as the Triton kernels of `kernels.slstm_recurrence` (CUDA tensors, or CPU under
    `TRITON_INTERPRET=1`)."""
    if triton:
        if not triton_runs_on(wx):
            raise RuntimeError("the Triton sLSTM recurrence needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
        from kernels.slstm_recurrence import backward_loop, forward_loop  # triton is imported only when used

        loops = (forward_loop, backward_loop)
    else:
        loops = (_forward_loop, _backward_loop)
    dtype = wx.dtype
    with torch.autocast(device_type=wx.device.type, enabled=False):
        y = _SLSTMRecurrence.apply(wx.float().contiguous(), r.float().contiguous(), loops)
    return y.to(dtype)


# ----------------------------------------------------------------------------------------------------------------
# CUDA backend: the xlstm package's JIT-built kernel.
# ----------------------------------------------------------------------------------------------------------------
_CUDA_FUNCTIONS: dict[tuple[int, int, str], type | Exception] = {}


def _cuda_function(hidden_size: int, num_heads: int, dtype: str) -> type:
    """The xlstm sLSTM CUDA autograd Function, JIT-built once per (hidden, heads, dtype) per process.

    Its `apply(training, x (S, B, NH*4*DH) "SBNGH", states (4, B, H), R (NH, DH, 4*DH), b (NH*4*DH,))` returns all
    states (4, S+1, B, H). Raises (and keeps raising, without rebuilding) where the kernel cannot be built.
    """
    key = (hidden_size, num_heads, dtype)
    if key not in _CUDA_FUNCTIONS:
        try:
            from xlstm.blocks.slstm.cell import sLSTMCellConfig, sLSTMCellFuncGenerator

            config = sLSTMCellConfig(hidden_size=hidden_size, num_heads=num_heads, backend="cuda", dtype=dtype)
            _CUDA_FUNCTIONS[key] = sLSTMCellFuncGenerator(True, config)
        except Exception as e:  # noqa: BLE001 - remembered and re-raised; "auto" falls back to vanilla
            _CUDA_FUNCTIONS[key] = e
    fn = _CUDA_FUNCTIONS[key]
    if isinstance(fn, Exception):
        raise RuntimeError(f"sLSTM CUDA kernel unavailable: {type(fn).__name__}: {fn}") from fn
    return fn


# ----------------------------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------------------------
class SLSTMCell(nn.Module):
    """Parameters of the recurrence in CUDA layout, and backend dispatch.

    forward: wx (B, S, NH, 4, DH) gate pre-activations without bias -> y (B, NH, S, DH).
    """

    def __init__(self, hidden_size: int, num_heads: int, bias_init: BiasInit = "powerlaw_blockdependent",
                 block_idx: int = 0, num_blocks: int = 1, backend: Backend = "auto",
                 cuda_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, hidden_size // num_heads
        self.bias_init, self.block_idx, self.num_blocks = bias_init, block_idx, num_blocks
        self.backend, self.cuda_dtype = backend, cuda_dtype
        self._recurrent_kernel_ = nn.Parameter(torch.empty(num_heads, self.head_dim, 4 * self.head_dim))
        self._bias_ = nn.Parameter(torch.empty(num_heads * 4 * self.head_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nh, dh = self.num_heads, self.head_dim
        nn.init.zeros_(self._recurrent_kernel_)                    # reference recurrent_weight_init="zeros"
        bias = torch.zeros(nh, 4, dh)
        if self.bias_init == "powerlaw_blockdependent":
            ratio = self.block_idx / (self.num_blocks - 1) if self.num_blocks > 1 else 0.0
            bias[:, 1] = -(-5.0 + 12.0 * (torch.arange(dh) / (dh - 1)) ** (0.3 + 1.3 * ratio))
        elif self.bias_init == "small_init":
            bias[:, 1] = torch.linspace(3.0, 6.0, dh)
        elif self.bias_init == "standard":
            bias.uniform_(-1 / math.sqrt(self.hidden_size), 1 / math.sqrt(self.hidden_size))
        elif self.bias_init != "zeros":
            raise ValueError(f"unknown bias_init {self.bias_init!r}")
        with torch.no_grad():
            self._bias_.copy_(bias.reshape(-1))

    def _auto_triton(self, x: torch.Tensor) -> bool:
        """'auto' on CUDA tensors -> the Triton kernels, where they import and take the head dim (<= 64)."""
        return self.backend == "auto" and self.head_dim <= 64 and auto_picks_triton(x)

    def _cuda_fn(self, x: torch.Tensor) -> type | None:
        """The CUDA kernel's Function where this call should use it, else None (vanilla or triton)."""
        if self.backend in ("vanilla", "triton") or (self.backend == "auto" and not x.is_cuda) or self._auto_triton(x):
            return None
        if not x.is_cuda:
            raise RuntimeError("sLSTM backend 'cuda' needs CUDA tensors")
        try:
            return _cuda_function(self.hidden_size, self.num_heads, self.cuda_dtype)
        except RuntimeError as e:
            if self.backend == "cuda":
                raise
            warnings.warn(f"{e}; the sLSTM uses the vanilla backend", RuntimeWarning, stacklevel=2)
            return None

    def forward(self, wx: torch.Tensor) -> torch.Tensor:
        B, S, NH, _, DH = wx.shape
        cuda_fn = self._cuda_fn(wx)
        if cuda_fn is not None:
            x = wx.transpose(0, 1).reshape(S, B, NH * 4 * DH)          # internal "SBNGH"
            states0 = x.new_zeros(4, B, NH * DH)
            states = cuda_fn.apply(self.training, x.contiguous(), states0,
                                   self._recurrent_kernel_.contiguous(), self._bias_.contiguous())
            y = states[0, 1:].view(S, B, NH, DH).permute(1, 2, 0, 3)
            return y if torch.is_autocast_enabled() else y.to(wx.dtype)
        wxb = (wx.permute(1, 2, 0, 3, 4) + self._bias_.view(NH, 1, 4, DH)).reshape(S, NH, B, 4 * DH)
        # on CPU, where Triton does not run: PyTorch
        triton = (self.backend == "triton" and triton_runs_on(wx)) or self._auto_triton(wx)
        return slstm_recurrence(wxb, self._recurrent_kernel_, triton).permute(2, 1, 0, 3)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, backend={self.backend!r}"


class SLSTMLayer(nn.Module):
    """sLSTM layer: (B, S, D) -> (B, S, D).

    Args:
        embedding_dim: D.  num_heads: NH (D % NH == 0).
        conv1d_kernel_size: depthwise conv width feeding the i/f gates (0: no conv).  conv1d_causal: causal conv
            (else 'same' padding).
        dropout: on the cell output, before the group norm.
        bias_init, block_idx, num_blocks: forget-gate bias init (reference `powerlaw_blockdependent` depends on the
            block's position in the stack).
        backend: "vanilla" (pure PyTorch), "triton" (Triton kernels), "cuda" (xlstm kernel), "auto" (CUDA inputs:
            triton where it imports and the head dim is <= 64, else cuda if it builds, else vanilla; CPU: vanilla).
        position_embeddings: add `common.ScaledSinusoidalEmbedding` (a learnable `pos_emb.scale`) to the layer
            input; `context_length` bounds the sequence length. `XLSTMLM` applies the reference's
            `s_position_embeddings` once at the block-stack input instead and leaves this off; the vendored
            reference layer code is not available, so this layer-level option is not checked against it.
        cuda_dtype: compute dtype of the CUDA kernel (reference default bfloat16).
        rc_head_flip: reproduce the reference's RCPS quirk on `forward(..., rc_branch=True)` (flip the heads of the
            cell output before the group norm). It makes an RCPS-wrapped layer *not* RC-equivariant; reference
            checkpoints need it. False: `rc_branch` is ignored and an RCPS-wrapped layer is exactly equivariant.
    """

    def __init__(self, embedding_dim: int, num_heads: int = 4, conv1d_kernel_size: int = 4,
                 conv1d_causal: bool = True, dropout: float = 0.0,
                 bias_init: BiasInit = "powerlaw_blockdependent", block_idx: int = 0, num_blocks: int = 1,
                 backend: Backend = "auto", position_embeddings: bool = False, context_length: int | None = None,
                 cuda_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16", rc_head_flip: bool = True):
        super().__init__()
        if num_heads < 1 or embedding_dim % num_heads:
            raise ValueError(f"sLSTM: num_heads {num_heads} must divide embedding_dim {embedding_dim}")
        self.embedding_dim, self.num_heads, self.context_length = embedding_dim, num_heads, context_length
        self.rc_head_flip = rc_head_flip
        self.conv1d_kernel_size = conv1d_kernel_size
        if conv1d_kernel_size > 0:
            self.conv1d = CausalConv1d(embedding_dim, conv1d_kernel_size, causal=conv1d_causal)
            self.conv1d.reset_parameters()  # as xlstm's CausalConv1d.__init__: keeps a seeded init on its stream
            self.conv_act_fn = nn.SiLU()
        self.fgate = LinearHeadwiseExpand(embedding_dim, num_heads)
        self.igate = LinearHeadwiseExpand(embedding_dim, num_heads)
        self.zgate = LinearHeadwiseExpand(embedding_dim, num_heads)
        self.ogate = LinearHeadwiseExpand(embedding_dim, num_heads)
        self.slstm_cell = SLSTMCell(embedding_dim, num_heads, bias_init, block_idx, num_blocks, backend, cuda_dtype)
        self.group_norm = MultiHeadLayerNorm(embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.pos_emb = ScaledSinusoidalEmbedding(embedding_dim) if position_embeddings else None

    def reset_parameters(self) -> None:
        """Reference order: cell, group norm, then small init of igate, fgate, zgate, ogate (conv: nn default)."""
        self.slstm_cell.reset_parameters()
        self.group_norm.reset_parameters()
        for gate in (self.igate, self.fgate, self.zgate, self.ogate):
            small_init_(gate.weight, dim=self.embedding_dim)

    def forward(self, x: torch.Tensor, *, rc_branch: bool = False) -> torch.Tensor:
        """x (B, S, D) -> (B, S, D). `rc_branch` (set by `RCPSWrapper`): this call is the RC half of an RCPS layer."""
        B, S, D = x.shape
        if self.pos_emb is not None:
            if self.context_length is not None and S > self.context_length:
                raise ValueError(f"sequence length {S} > context_length {self.context_length}")
            x = x + self.pos_emb(x).to(x.dtype)
        x_conv = self.conv_act_fn(self.conv1d(x)) if self.conv1d_kernel_size > 0 else x
        NH = self.num_heads
        # the reference's slot order: `fgate` -> i slot, `igate` -> f slot
        gates = (self.fgate(x_conv), self.igate(x_conv), self.zgate(x), self.ogate(x))
        wx = torch.stack([g.view(B, S, NH, -1) for g in gates], dim=3)      # (B, S, NH, 4, DH)
        y = self.dropout(self.slstm_cell(wx))                               # (B, NH, S, DH)
        if rc_branch and self.rc_head_flip:
            y = y.flip(1)
        return self.group_norm.forward_heads_last(y.transpose(1, 2))        # (B, S, D)


def proj_up_dim(embedding_dim: int, proj_factor: float, round_up: bool, multiple_of: int) -> int:
    """xlstm `UpProjConfigMixin._set_proj_up_dim`."""
    mult = proj_factor * embedding_dim / multiple_of
    return int((math.ceil(mult) if round_up else math.floor(mult)) * multiple_of)


class GatedFeedForward(nn.Module):
    """Gated GELU feed-forward (xlstm `GatedFeedForward`): proj_down(gelu(gate) * up). (B, S, D) -> (B, S, D)."""

    def __init__(self, embedding_dim: int, proj_factor: float = 1.3, round_proj_up_dim_up: bool = True,
                 round_proj_up_to_multiple_of: int = 64, dropout: float = 0.0, num_blocks: int = 1,
                 bias: bool = False):
        super().__init__()
        self.embedding_dim, self.num_blocks = embedding_dim, num_blocks
        self.up_dim = proj_up_dim(embedding_dim, proj_factor, round_proj_up_dim_up, round_proj_up_to_multiple_of)
        self.proj_up = nn.Linear(embedding_dim, 2 * self.up_dim, bias=bias)
        self.proj_down = nn.Linear(self.up_dim, embedding_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        small_init_(self.proj_up.weight, dim=self.embedding_dim)
        wang_init_(self.proj_down.weight, dim=self.embedding_dim, num_blocks=self.num_blocks)
        for lin in (self.proj_up, self.proj_down):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.proj_up(x).split(self.up_dim, dim=-1)
        return self.dropout(self.proj_down(F.gelu(gate) * up))

"""mLSTM layer, cell and backends: the xlstm v1 math (as forked by DNA-xLSTM), any sequence length.

Backends share one signature, q, k, v (B, NH, S, DH), i, f pre-activations (B, NH, S) -> h (B, NH, S, DH) (any
leading batch axes; the layer passes heads first, (NH, B, S, DH)):

- `mlstm_parallel`: the reference's quadratic stabilised parallel form (`parallel_stabilized_simple`).
- `mlstm_chunkwise`: pure PyTorch chunkwise form with the *same* stabiliser (row max of the log gate matrix), so it
  equals `mlstm_parallel` to fp32 rounding at any length (no multiple-of-chunk requirement). The inter-chunk
  recurrence is itself computed in parallel form over chunks (no Python loop), which is fastest on CPU.
- `mlstm_kernel`: `mlstm_kernels` (CPU: `chunkwise--native_custbw`, CUDA: `chunkwise--triton_limit_chunk`),
  zero-padded to the chunk multiple. Its stabiliser and normaliser gradient differ from the reference only at
  the level of `eps` (the normaliser cancels in the following per-head LayerNorm).

Native bidirectional mLSTM (DNA-xLSTM `m_backend_bidirectional`): the gate matrix is the causal one on and below
the diagonal and, above it, log D[t, s] = sum_{u=t}^{s-1} log sigmoid(f_u) + i_s (reversed cumulative forget
gates); one row-max stabiliser and one normaliser over the whole row. `mlstm_bidirectional_parallel` is that
quadratic reference; `mlstm_bidirectional_chunkwise` computes the same in linear memory (and is what 'auto'
runs); on CUDA, backend 'kernel' runs dnax's Triton kernel (`kernels/mlstm_bidirectional.py`), the same math.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .common import (
    CausalConv1d,
    LinearHeadwiseExpand,
    MultiHeadLayerNorm,
    apply_rope,
    bias_linspace_init_,
    headwise_block_weights,
    rope_cos_sin,
    small_init_,
    wang_init_,
)

Backend = Literal["parallel", "chunkwise", "kernel", "auto"]
EPS = 1e-6

# ---------------------------------------------------------------------------------------------- quadratic forms


def _normalise(C: torch.Tensor, v: torch.Tensor, max_log_D: torch.Tensor, eps: float) -> torch.Tensor:
    normalizer = torch.maximum(C.sum(dim=-1, keepdim=True).abs(), torch.exp(-max_log_D))
    return (C / (normalizer + eps)) @ v


def mlstm_parallel(q, k, v, i, f, eps: float = EPS, **_) -> torch.Tensor:
    """Reference causal parallel form, O(S^2) memory. i, f: (B, NH, S)."""
    S, DH = q.shape[-2:]
    cs = torch.cumsum(F.logsigmoid(f), dim=-1).unsqueeze(-1)  # (B, NH, S, 1)
    ltr = torch.ones(S, S, dtype=torch.bool, device=q.device).tril_()
    log_D = torch.where(ltr, cs - cs.transpose(-2, -1), -float("inf")) + i.unsqueeze(-2)
    max_log_D = log_D.amax(dim=-1, keepdim=True)
    C = (q @ (k / math.sqrt(DH)).transpose(-2, -1)) * torch.exp(log_D - max_log_D)
    return _normalise(C, v, max_log_D, eps)


def mlstm_bidirectional_parallel(q, k, v, i, f, eps: float = EPS, **_) -> torch.Tensor:
    """Reference native-bidirectional parallel form (DNA-xLSTM `bidirectional=True` in the backend), O(S^2)."""
    S, DH = q.shape[-2:]
    log_f = F.logsigmoid(f).unsqueeze(-1)  # (B, NH, S, 1)
    cs = torch.cumsum(log_f, dim=-2)
    rcs = torch.cumsum(torch.flip(log_f, dims=(-2,)), dim=-2)  # reversed cumulative, as the reference computes it
    upper = torch.flip(rcs - rcs.transpose(-2, -1), dims=(-1, -2))  # [t, s] = sum_{u=t}^{s-1} log f_u for s > t
    ltr = torch.ones(S, S, dtype=torch.bool, device=q.device).tril_()
    log_D = torch.where(ltr, cs - cs.transpose(-2, -1), upper) + i.unsqueeze(-2)
    max_log_D = log_D.amax(dim=-1, keepdim=True)
    C = (q @ (k / math.sqrt(DH)).transpose(-2, -1)) * torch.exp(log_D - max_log_D)
    return _normalise(C, v, max_log_D, eps)


# ---------------------------------------------------------------------------------------------- chunkwise form


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def _tril(n: int, device, diagonal: int = 0) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril_(diagonal)


class _IntraChunk(torch.autograd.Function):
    """The O(L^2) part of a chunk: num = P v and den = P 1 with P = (q k^T) * exp(log_D - m), where

        log_D[t, s] = b_t - b_s + i_s        for s <= t   (forward decay; b: inclusive cumsum of log f)
        log_D[t, s] = x_s - x_t + i_s        for s > t    (reversed decay, bidirectional only; x exclusive cumsum)

    and -inf where a key does not count. 3-D inputs (X, L, .); `log_D` is passed precomputed (no grad); the
    q k^T scale is folded into m by the caller. Hand-written backward: d log_D = R = dP * P, whose row and
    column sums give db, dx, di, dm.
    """

    @staticmethod
    def forward(ctx, q, k, v, b, x, i, m, log_D):
        E = (log_D - m.unsqueeze(-1)).exp_()
        P = torch.bmm(q, k.transpose(1, 2)).mul_(E)
        num = torch.bmm(P, v)
        ctx.save_for_backward(q, k, v, E, P)
        ctx.bidirectional = x is not None
        return num, P.sum(-1)

    @staticmethod
    def backward(ctx, dnum, dden):
        q, k, v, E, P = ctx.saved_tensors
        dP = torch.baddbmm(dden.unsqueeze(-1), dnum, v.transpose(1, 2))  # (X, L, L)
        dv = torch.bmm(P.transpose(1, 2), dnum)
        R = dP * P
        dS = dP.mul_(E)
        dq, dk = torch.bmm(dS, k), torch.bmm(dS.transpose(1, 2), q)
        rows, cols = R.sum(-1), R.sum(-2)
        if not ctx.bidirectional:
            return dq, dk, dv, rows - cols, None, cols, -rows, None
        R_lo = R.tril_()  # R no longer needed whole
        rows_lo, cols_lo = R_lo.sum(-1), R_lo.sum(-2)
        db = rows_lo - cols_lo
        dx = (cols - cols_lo) - (rows - rows_lo)
        return dq, dk, dv, db, dx, cols, -rows, None


def _row_max_with_grad(log_D, b, x, i):
    """Row max of log_D (computed without grad) as a differentiable function of b, x, i through the arg max."""
    with torch.no_grad():
        m_val, s_max = log_D.max(-1)
    m_lo = b - b.gather(-1, s_max) + i.gather(-1, s_max)
    if x is not None:
        t = torch.arange(s_max.shape[-1], device=s_max.device)
        m_up = x.gather(-1, s_max) - x + i.gather(-1, s_max)
        m_lo = torch.where(s_max <= t, m_lo, m_up)
    return torch.where(torch.isfinite(m_val), m_lo, m_val)


#: chunks per block of the two-level inter-chunk sums (used from 2 blocks of chunks on)
STATE_BLOCK = 16


def _directed_mask(n: int, device, reverse: bool) -> torch.Tensor:
    """(n, n) bool: key l strictly before query c (reverse: strictly after)."""
    lower = _tril(n, device, -1)
    return lower.transpose(0, 1) if reverse else lower


def _prefix_sums(X, A, B, w, reverse: bool = False, block: int | None = None):
    """Y_c = sum_{l < c} exp(A_c - B_l + w_l - M_c) X_l with M_c = max_{l < c} (A_c - B_l + w_l) (-inf, Y_c = 0 where
    no l < c; `reverse`: over l > c); X (..., NC, F), A, B, w (..., NC). Exactly (up to rounding) the masked (NC x NC)
    weight matrix times X, but for NC > 2 * block in two levels: within blocks of `block` chunks directly, across
    blocks through block-boundary states (reference values P, Q cancel: A_c - B_l = (A_c - P_b) + (P_b - Q_beta) +
    (Q_beta - B_l)), so the work is O(NC * block + (NC / block)^2) instead of O(NC^2), and M_c is still the exact
    row max."""
    NC, block = X.shape[-2], block or STATE_BLOCK
    if NC <= 2 * block:
        log_W = (A.unsqueeze(-1) - B.unsqueeze(-2) + w.unsqueeze(-2)).masked_fill(
            ~_directed_mask(NC, X.device, reverse), -float("inf"))
        M = log_W.amax(-1)
        return torch.exp(log_W - _finite_or_zero(M).unsqueeze(-1)) @ X, M
    pad = (-NC) % block
    if pad:  # padded chunks carry no weight (w = -inf): they only ever receive
        X = F.pad(X, (0, 0, 0, pad))
        A, B = (F.pad(t, (0, pad), mode="replicate") for t in (A, B))
        w = F.pad(w, (0, pad), value=-float("inf"))
    NB = X.shape[-2] // block
    Xb, Ab, Bb, wb = (t.unflatten(-2 if t is X else -1, (NB, block)) for t in (X, A, B, w))
    # within each block
    log_W = (Ab.unsqueeze(-1) - Bb.unsqueeze(-2) + wb.unsqueeze(-2)).masked_fill(
        ~_directed_mask(block, X.device, reverse), -float("inf"))  # (..., NB, block, block)
    M_in = log_W.amax(-1)
    # each block's state at its boundary facing the queries (reference Q = B there), stabilised by its own max
    Q = Bb[..., 0] if reverse else Bb[..., -1]
    log_s = Q.unsqueeze(-1) - Bb + wb  # (..., NB, block)
    M_s = log_s.amax(-1)
    S = (torch.exp(log_s - _finite_or_zero(M_s).unsqueeze(-1)).unsqueeze(-2) @ Xb).squeeze(-2)  # (..., NB, F)
    # states entering each block from the blocks before it (reverse: after it); reference P = A at its entry
    P = Ab[..., -1] if reverse else Ab[..., 0]
    log_T = (P.unsqueeze(-1) - Q.unsqueeze(-2) + M_s.unsqueeze(-2)).masked_fill(
        ~_directed_mask(NB, X.device, reverse), -float("inf"))
    M_T = log_T.amax(-1)  # (..., NB)
    T = torch.exp(log_T - _finite_or_zero(M_T).unsqueeze(-1)) @ S  # (..., NB, F)
    # each chunk: the in-block part and the carried state, under one exact max
    log_carry = Ab - P.unsqueeze(-1) + M_T.unsqueeze(-1)  # (..., NB, block)
    M = torch.maximum(M_in, log_carry)
    Mz = _finite_or_zero(M)
    Y = torch.exp(log_W - Mz.unsqueeze(-1)) @ Xb + torch.exp(log_carry - Mz).unsqueeze(-1) * T.unsqueeze(-2)
    return Y.flatten(-3, -2)[..., :NC, :], M.flatten(-2)[..., :NC]


def _chunk_states(k, v, log_w, g, directions):
    """States entering each chunk from earlier chunks (forward) and/or later chunks (reversed).

    k, v (..., NC, L, DH); log_w (..., NC, L, D): per key, the log weight (input gate plus decay) to the boundary
    of its chunk that faces the query chunk, for each of the D directions; g (..., NC) the whole-chunk decays.
    Returns C (..., NC, DH, D*DH) (direction d in columns d*DH:(d+1)*DH), n (..., NC, DH, D)
    and their log scales M (..., NC, D) (-inf where no chunk contributes).
    """
    NC, L, DH = k.shape[-3:]
    D = log_w.shape[-1]
    w_max = log_w.amax(-2)  # (..., NC, D)
    KW = (k.unsqueeze(-2) * torch.exp(log_w - _finite_or_zero(w_max).unsqueeze(-2)).unsqueeze(-1)).flatten(-2)
    U = (KW.transpose(-1, -2) @ v).unflatten(-2, (D, DH))  # (..., NC, D, DH, DH): sum_s w k_s v_s^T
    u = KW.sum(-2).unflatten(-1, (D, DH))  # (..., NC, D, DH)
    G = g.cumsum(-1)  # G_c: decay from the sequence start through chunk c
    G_prev = F.pad(G[..., :-1], (1, 0))  # G_{c-1}, exactly (G - g would leak rounding from chunk c into c's row)
    Ys, Ms = [], []
    for d, forward in enumerate(directions):
        # (..., NC, DH*DH + DH), contiguous: a strided slice would be copied by each blocked matmul, and kept
        X = torch.cat([U[..., d, :, :].flatten(-2), u[..., d, :]], -1)
        if forward:  # query chunk c <- key chunk l < c, log weight G_{c-1} - G_l + w_l
            Y, M = _prefix_sums(X, G_prev, G, w_max[..., d])
        else:  # query chunk c <- key chunk l > c, log weight G_{l-1} - G_c + w_l = (-G_c) - (-G_{l-1}) + w_l
            Y, M = _prefix_sums(X, -G, -G_prev, w_max[..., d], reverse=True)
        Ys.append(Y)
        Ms.append(M)
    Y = torch.stack(Ys, -2)  # (..., NC, D, DH*DH + DH)
    C = Y[..., : DH * DH].unflatten(-1, (DH, DH)).movedim(-3, -2).flatten(-2)  # (..., NC, DH, D*DH)
    n = Y[..., DH * DH :].movedim(-2, -1).contiguous()  # (..., NC, DH, D); its own storage: a view would keep Y
    return C, n, torch.stack(Ms, -1)


def _mlstm_chunked(q, k, v, i, f, chunk_size: int, eps: float, bidirectional: bool) -> torch.Tensor:
    """Chunkwise mLSTM with the parallel form's exact stabiliser m (row max of the log gate matrix)."""
    S, DH = q.shape[-2:]
    L = min(chunk_size, S)
    pad = (-S) % L
    if pad:  # padded keys get i = -inf: they never count, in either direction
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        i, f = F.pad(i, (0, pad), value=-float("inf")), F.pad(f, (0, pad))
    NC = (S + pad) // L
    q, k, v = (t.unflatten(-2, (NC, L)) for t in (q, k, v))  # (..., NC, L, DH)
    i, log_f = i.unflatten(-1, (NC, L)), F.logsigmoid(f).unflatten(-1, (NC, L))

    b = log_f.cumsum(-1)  # decay from the chunk start to t, inclusive
    g = b[..., -1]  # whole-chunk decay
    x = b - log_f if bidirectional else None  # decay from the chunk start to t, exclusive
    with torch.no_grad():
        log_D = b.unsqueeze(-1) - b.unsqueeze(-2) + i.unsqueeze(-2)
        if bidirectional:
            log_D = torch.where(_tril(L, q.device), log_D, x.unsqueeze(-2) - x.unsqueeze(-1) + i.unsqueeze(-2))
        else:
            log_D.masked_fill_(~_tril(L, q.device), -float("inf"))
    m = _row_max_with_grad(log_D, b, x, i)

    # inter-chunk states; per key the log weight to its chunk end (forward) / start (reversed), per query the
    # decay from its chunk start (forward) / end (reversed)
    log_w, to_query = [g.unsqueeze(-1) - b + i], [b]
    if bidirectional:
        log_w.append(x + i)
        to_query.append(g.unsqueeze(-1) - x)
    C, n, M = _chunk_states(k, v, torch.stack(log_w, -1), g, (True, False)[: len(log_w)])
    m_inter = torch.stack(to_query, -1) + M.unsqueeze(-2)  # (..., NC, L, D)
    m = torch.maximum(m, m_inter.amax(-1))

    scale = DH**-0.5
    m_scaled = m - math.log(scale)  # folds the q k^T scale into the exponentials
    shape = q.shape
    num, den = _IntraChunk.apply(
        *(t.reshape(-1, L, DH) for t in (q, k, v)),
        *(None if t is None else t.reshape(-1, L) for t in (b, x, i, m_scaled)),
        log_D.reshape(-1, L, L),
    )
    e = torch.exp(m_inter - m_scaled.unsqueeze(-1))  # (..., NC, L, D): scale of each direction's state term
    Y = (q @ C).unflatten(-1, (-1, DH))  # (..., NC, L, D, DH)
    num = num.view(shape) + (Y * e.unsqueeze(-1)).sum(-2)
    den = den.view(shape[:-1]) + ((q @ n) * e).sum(-1)
    h = num / (torch.maximum(den.abs(), torch.exp(-m)) + eps).unsqueeze(-1)
    return h.flatten(-3, -2)[..., :S, :]


def _in_fp32(q, k, v, i, f, chunk_size: int, eps: float, bidirectional: bool) -> torch.Tensor:
    """Everything in at least fp32, whatever the autocast or input dtype (a no-op for fp32 and fp64 inputs)."""
    dtype = q.dtype
    work = torch.promote_types(dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):
        h = _mlstm_chunked(*(t.to(work) for t in (q, k, v, i, f)), chunk_size, eps, bidirectional)
    return h.to(dtype)


def mlstm_chunkwise(q, k, v, i, f, chunk_size: int = 64, eps: float = EPS, **_) -> torch.Tensor:
    """Causal mLSTM, chunkwise, linear memory; equals `mlstm_parallel` (same stabiliser) for any S."""
    return _in_fp32(q, k, v, i, f, chunk_size, eps, bidirectional=False)


def mlstm_bidirectional_chunkwise(q, k, v, i, f, chunk_size: int = 64, eps: float = EPS, **_) -> torch.Tensor:
    """Native bidirectional mLSTM, chunkwise, linear memory; equals `mlstm_bidirectional_parallel`.

    Inside a chunk the full (L, L) gate matrix is used once; across chunks, states flow forward from earlier
    chunks and backward from later ones; one stabiliser and one normaliser per row, as in the quadratic form.
    """
    return _in_fp32(q, k, v, i, f, chunk_size, eps, bidirectional=True)


# ---------------------------------------------------------------------------------------------- mlstm_kernels


@functools.lru_cache(maxsize=None)
def _kernels_fn(device_type: str) -> Callable:
    from mlstm_kernels.torch import get_mlstm_kernel  # imports triton: only when this backend is used

    return get_mlstm_kernel("chunkwise--triton_limit_chunk" if device_type == "cuda" else "chunkwise--native_custbw")


def kernel_dtypes(q, k, v, i, f) -> tuple[torch.Tensor, ...]:
    """q, k, v in the autocast dtype when autocast is on (else q's dtype), gates in fp32: what the Triton kernels
    should see (mlstm_kernels then casts the gates to the q dtype itself under CUDA autocast, as in xLSTMLarge).
    fp32 q, k, v send mlstm_kernels to its fp32 tiles, measured ~12x slower on an H100
    (benchmarks/results/profile_xlstm_2m_clm_128x1024_cuda.txt)."""
    device = q.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else q.dtype
    return q.to(dtype), k.to(dtype), v.to(dtype), i.float(), f.float()


@torch.compiler.disable  # opaque to torch.compile: the rest of the model compiles around it, no tracing into it
def mlstm_kernel(q, k, v, i, f, chunk_size: int = 64, eps: float = EPS, **_) -> torch.Tensor:
    """Causal mLSTM via `mlstm_kernels` (they scale q by DH**-0.5 themselves), zero-padded to the chunk size."""
    q, k, v, i, f = kernel_dtypes(q, k, v, i, f)
    S = q.shape[-2]
    L = min(chunk_size, 1 << (S - 1).bit_length())  # power of two, >= 16 for the Triton kernels
    L = max(L, 16) if q.is_cuda else L
    pad = (-S) % L
    if pad:  # causal: trailing padding never reaches earlier outputs
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        i, f = F.pad(i, (0, pad)), F.pad(f, (0, pad))
    # autocast_kernel_dtype: mlstm_kernels' custom_fwd casts every input to it under CUDA autocast, fp32 by default
    # (which undid the bf16 above, and made the kernel ~12x slower on an H100); in q's dtype, as xLSTMLarge runs it
    h = _kernels_fn(q.device.type)(q.contiguous(), k.contiguous(), v.contiguous(), i.contiguous(), f.contiguous(),
                                   chunk_size=L, eps=eps, autocast_kernel_dtype=q.dtype)
    return h[..., :S, :]


def resolve_backend(backend: Backend, device: torch.device | None = None) -> str:
    """Causal 'auto' -> the fastest correct backend for the device (measured by benchmarks/train_step.py; the native
    bidirectional choice is in `mlstm_backend_fn`)."""
    if backend != "auto":
        return backend
    return "kernel" if device is not None and device.type == "cuda" else "chunkwise"


@torch.compiler.disable  # opaque to torch.compile, like `mlstm_kernel`
def mlstm_bidirectional_kernel(q, k, v, i, f, eps: float = EPS, **_) -> torch.Tensor:
    """Native bidirectional mLSTM via dnax's Triton kernel (`kernels/mlstm_bidirectional.py`), linear memory."""
    try:
        from kernels.mlstm_bidirectional import mlstm_bidirectional  # triton: imported only when used
    except ImportError as e:
        raise ImportError(f"the 'kernel' native-bidirectional backend needs the repository's kernels/ folder and "
                          f"triton ({e}); use m_backend='chunkwise' (same math, PyTorch)") from None
    return mlstm_bidirectional(*kernel_dtypes(q, k, v, i, f), eps=eps)


def mlstm_backend_fn(backend: Backend, bidirectional: bool, device: torch.device | None = None) -> Callable:
    if bidirectional:
        # 'kernel': dnax's Triton kernel on CUDA (on CPU the chunkwise PyTorch form, same math). 'auto' is the
        # chunkwise form everywhere: on an H100 it beats the quadratic-time Triton kernel from S = 8k (41.6 vs
        # 283 ms fwd+bwd at 32k, benchmarks/results/mlstm_bidirectional_kernel_nvidia_h100_80gb_hbm3.md), and the
        # kernel missed its output check on that GPU at S = 1000 / 4097 in two leases (fp32 prefix sums of the gates,
        # and bf16 C before C @ V; both changed since, checked in the interpreter and an emulation, not yet on a
        # GPU: re-check there before making it the default for short sequences).
        if backend == "kernel" and device is not None and device.type == "cuda":
            return mlstm_bidirectional_kernel
        return mlstm_bidirectional_parallel if backend == "parallel" else mlstm_bidirectional_chunkwise
    backend = resolve_backend(backend, device)
    return {"parallel": mlstm_parallel, "chunkwise": mlstm_chunkwise, "kernel": mlstm_kernel}[backend]


# ---------------------------------------------------------------------------------------------- modules


class MLSTMCell(nn.Module):
    """Gates from cat(q, k, v), the mLSTM backend, then a per-head LayerNorm. Keys: igate, fgate, outnorm.

    `recompute`: keep only the backend's inputs for backward and run it again there (activation checkpointing of
    the cell alone: the chunkwise forms save several fp32 tensors the size of q per chunk direction)."""

    def __init__(self, embedding_dim: int, num_heads: int, backend: Backend = "auto", chunk_size: int = 64,
                 bidirectional: bool = False, rope: bool = False, rope_theta: float = 500000.0,
                 recompute: bool = False):
        super().__init__()
        self.embedding_dim, self.num_heads, self.recompute = embedding_dim, num_heads, recompute
        self.backend, self.chunk_size, self.bidirectional = backend, chunk_size, bidirectional
        self.rope, self.rope_theta = rope, rope_theta
        self.igate = nn.Linear(3 * embedding_dim, num_heads)
        self.fgate = nn.Linear(3 * embedding_dim, num_heads)
        self.outnorm = MultiHeadLayerNorm(embedding_dim, weight=True, bias=False)
        self._rope_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.outnorm.reset_parameters()
        nn.init.zeros_(self.fgate.weight)
        bias_linspace_init_(self.fgate.bias, start=3.0, end=6.0)
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, mean=0.0, std=0.1)

    def _rope_tables(self, S: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self._rope_cache
        if cache is None or cache[0].shape[0] < S or cache[0].device != device:
            cache = self._rope_cache = rope_cos_sin(self.embedding_dim // self.num_heads, S, self.rope_theta, device)
        return cache[0][:S], cache[1][:S]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The reference cell: q, k, v (B, S, H) -> (B, S, H); gates = Linear(cat(q, k, v))."""
        B, S, H = q.shape
        NH = self.num_heads
        qkv = torch.cat([q, k, v], -1)
        i, f = torch.cat([self.igate(qkv), self.fgate(qkv)], -1).view(B, S, 2, NH).permute(2, 3, 0, 1)
        q, k, v = (t.view(B, S, NH, -1).permute(2, 0, 1, 3) for t in (q, k, v))  # (NH, B, S, DH)
        return self.mix(q, k, v, i, f)

    def mix(self, q, k, v, i, f) -> torch.Tensor:
        """q, k, v (NH, B, S, DH), gate pre-activations i, f (NH, B, S) -> normalised cell output (B, S, H).

        Heads lead the layout (the backends treat both leading axes as batch): the per-head projections are then
        plain batched matmuls over NH.
        """
        NH, B, S, DH = q.shape
        if self.rope:
            cos, sin = self._rope_tables(S, q.device)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        fn = mlstm_backend_fn(self.backend, self.bidirectional, q.device)
        if self.recompute and torch.is_grad_enabled():
            h = checkpoint(fn, q, k, v, i, f, chunk_size=self.chunk_size, use_reentrant=False)
        else:
            h = fn(q, k, v, i, f, chunk_size=self.chunk_size)  # (NH, B, S, DH)
        return self.outnorm.forward_heads_last(h.permute(1, 2, 0, 3))  # (B, S, H)


class MLSTMLayer(nn.Module):
    """xlstm v1 `mLSTMLayer`: proj_up -> (conv -> SiLU -> q, k ; v) -> cell -> skip -> * SiLU(z) -> proj_down."""

    def __init__(self, embedding_dim: int, num_heads: int = 4, proj_factor: float = 2.0, conv1d_kernel_size: int = 4,
                 conv1d_causal: bool = True, qkv_proj_blocksize: int = 4, bias: bool = False, dropout: float = 0.0,
                 init_num_blocks: int = 1, round_proj_up_to_multiple_of: int = 64, round_proj_up_dim_up: bool = False,
                 backend: Backend = "auto", chunk_size: int = 64, bidirectional: bool = False, rope: bool = False,
                 recompute_cell: bool = False):
        super().__init__()
        mult = proj_factor * embedding_dim / round_proj_up_to_multiple_of
        inner = int((math.ceil(mult) if round_proj_up_dim_up else math.floor(mult)) * round_proj_up_to_multiple_of)
        if inner == 0:
            raise ValueError(f"mLSTM: proj_factor {proj_factor} x embedding_dim {embedding_dim} rounds down to an "
                             f"inner dim of 0 (multiples of {round_proj_up_to_multiple_of}); use embedding_dim >= "
                             f"{math.ceil(round_proj_up_to_multiple_of / proj_factor)}")
        for what, n in (("num_heads", num_heads), ("qkv_proj_blocksize", qkv_proj_blocksize)):
            if n < 1 or inner % n:
                raise ValueError(f"mLSTM: {what} {n} must divide the inner dim {inner} "
                                 f"(proj_factor {proj_factor} x embedding_dim {embedding_dim}, rounded)")
        self.embedding_dim, self.inner_dim, self.init_num_blocks = embedding_dim, inner, init_num_blocks
        self.proj_up = nn.Linear(embedding_dim, 2 * inner, bias=bias)
        n_proj_heads = inner // qkv_proj_blocksize
        self.q_proj = LinearHeadwiseExpand(inner, n_proj_heads, bias=bias)
        self.k_proj = LinearHeadwiseExpand(inner, n_proj_heads, bias=bias)
        self.v_proj = LinearHeadwiseExpand(inner, n_proj_heads, bias=bias)
        self.conv1d = CausalConv1d(inner, conv1d_kernel_size, bias=True, causal=conv1d_causal)
        self.conv1d.reset_parameters()  # the reference re-initialises the conv once more at construction
        self.mlstm_cell = MLSTMCell(inner, num_heads, backend, chunk_size, bidirectional, rope,
                                    recompute=recompute_cell)
        self.learnable_skip = nn.Parameter(torch.ones(inner))
        self.proj_down = nn.Linear(inner, embedding_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        small_init_(self.proj_up.weight, dim=self.embedding_dim)
        wang_init_(self.proj_down.weight, dim=self.embedding_dim, num_blocks=self.init_num_blocks)
        for lin in (self.proj_up, self.proj_down):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        nn.init.ones_(self.learnable_skip)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            small_init_(proj.weight, dim=self.embedding_dim)  # embedding dim, not the inner dim (as the reference)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        self.mlstm_cell.reset_parameters()

    def forward(self, x: torch.Tensor, *, rc_branch: bool = False) -> torch.Tensor:  # (B, S, D) -> (B, S, D)
        """`rc_branch` is accepted for RCPS wrappers and ignored (the mLSTM layer has no RC-specific quirk)."""
        x_mlstm, z = self.proj_up(x).chunk(2, dim=-1)  # (B, S, I) each
        c = self.conv1d(x_mlstm, silu=True)
        cell = self.mlstm_cell
        NH, I = cell.num_heads, self.inner_dim
        if (I // NH) % self.q_proj.weight.shape[-1]:  # projection blocks straddle cell heads: reference path
            h = cell(self.q_proj(c), self.k_proj(c), self.v_proj(x_mlstm))
        else:
            h = self._cell_fast(c, x_mlstm)
        # in the activations' dtype (bf16 under autocast; the cell's output norm returns fp32 there)
        h = torch.addcmul(h.to(c.dtype), self.learnable_skip.to(c.dtype), c) * F.silu(z)
        return self.dropout(self.proj_down(h))

    def _cell_fast(self, c: torch.Tensor, x_mlstm: torch.Tensor) -> torch.Tensor:
        """Same math as `mlstm_cell(q_proj(c), k_proj(c), v_proj(x_mlstm))`, laid out for speed.

        The block-diagonal q/k/v projections run as one dense (DH x DH) matmul per cell head and land directly in
        the (B, NH, S, DH) layout of the backend; the gates, linear in q, k, v, are taken from c and x_mlstm with
        the projections folded into their weights (no concatenated (B, S, 3H) tensor).
        """
        B, S, I = c.shape
        cell = self.mlstm_cell
        NH = cell.num_heads
        DH = I // NH
        # (NH, B * S, DH): one dense (DH x DH) block per cell head
        ch = c.view(B * S, NH, DH).transpose(0, 1).contiguous()
        xh = x_mlstm.reshape(B * S, NH, DH).transpose(0, 1).contiguous()
        projs = (self.q_proj, self.k_proj, self.v_proj)
        q, k, v = (
            torch.bmm(inp, headwise_block_weights(p.weight, NH).transpose(-1, -2)).view(NH, B, S, DH)
            for inp, p in zip((ch, ch, xh), projs)
        )
        w_g = torch.cat([cell.igate.weight, cell.fgate.weight])  # (2 NH, 3 I) acting on cat(q, k, v)
        b_g = torch.cat([cell.igate.bias, cell.fgate.bias])
        folded = []
        for j, p in enumerate(projs):  # w_g[:, jI:(j+1)I] @ blockdiag(p.weight)
            w_j = w_g[:, j * I : (j + 1) * I].unflatten(1, p.weight.shape[:2])  # (2 NH, NHp, dout)
            folded.append(torch.einsum("gpo,pod->gpd", w_j, p.weight).flatten(1))
            if p.bias is not None:
                b_g = b_g + w_g[:, j * I : (j + 1) * I] @ p.bias
        gates = torch.addmm(b_g, c.reshape(-1, I), (folded[0] + folded[1]).t())
        gates = gates.addmm_(x_mlstm.reshape(-1, I), folded[2].t())
        i, f = gates.view(B, S, 2, NH).permute(2, 3, 0, 1)  # each (NH, B, S)
        if self.q_proj.bias is not None:
            q, k, v = (t + p.bias.to(t.dtype).view(NH, 1, 1, DH) for t, p in zip((q, k, v), projs))
        return cell.mix(q, k, v, i, f)

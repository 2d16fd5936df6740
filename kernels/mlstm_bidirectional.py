"""Native (non-causal) bidirectional mLSTM: a tiled Triton kernel in linear memory, and its quadratic reference.

    h = mlstm_bidirectional(q, k, v, i, f)        # q, k, v (B, NH, S, DH); i, f (B, NH, S) gate pre-activations

Semantics (DNA-xLSTM's native bidirectional cell, `mlstm_bidirectional_ref` below): with lf = logsigmoid(f),
b = cumsum(lf) (inclusive) and x = -(reversed inclusive cumsum of lf), so x_s - x_t = sum_{u=t}^{s-1} lf_u,

    log D[t, s] = b_t - b_s + i_s   for s <= t        (forward decay, the causal mLSTM)
    log D[t, s] = x_s - x_t + i_s   for s >  t        (reversed decay: sum_{u=t}^{s-1} lf_u + i_s)
    m_t = max_s log D[t, s]                         (row-max stabiliser over the whole row)
    C[t, s] = (q_t . k_s / sqrt(DH)) exp(log D[t, s] - m_t)
    h_t = sum_s C[t, s] v_s / (max(|sum_s C[t, s]|, exp(-m_t)) + eps)

The kernel is flash-attention shaped: one program per (batch*head, block of BLOCK_T queries) streams over key
blocks with an online max (rescaling its accumulators when the max grows), so nothing of size S x S is ever
stored; memory is O(S * DH). The backward recomputes each tile in two kernels (queries: dq and the row sums of
d log D; keys: dk, dv and the column sums) and turns those sums into gradients of i and of the cumulative gates;
autograd carries them through cumsum/logsigmoid to f. The gradient through the stabiliser m (which the
normaliser's `eps` and `exp(-m)` make non-zero) is routed to the row's arg max exactly as torch's `amax` does,
so gradients equal the reference's up to floating-point rounding.

Compute is fp32 (fp32 tiles, `ieee` dot products for fp32 inputs; bf16/fp16 inputs feed their dot products in
their own dtype with fp32 accumulation; the forward's C @ V takes C as two parts in that dtype, hi and lo, so C
keeps ~16 bits), except the gates' prefix sums b and x: summed in fp64 and carried as fp32 (hi, lo) pairs, so that
log D is exact to fp32 however long the sequence (`cumulative_gates`). Both matter where the normaliser nearly
cancels: on an H100 at S = 1000 / 4097 each alone put h off by up to ~1 in some rows (an emulation of the bf16
arithmetic reproduces the failures seen there, and none with the two parts). Any S (tiles are masked), DH up to
256. On CPU the kernel runs only under `TRITON_INTERPRET=1` (tests); `mlstm_bidirectional_ref` is the fallback
anywhere.
"""
from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

__all__ = ["mlstm_bidirectional", "mlstm_bidirectional_ref"]

EPS = 1e-6


def mlstm_bidirectional_ref(q, k, v, i, f, eps: float = EPS) -> torch.Tensor:
    """Quadratic PyTorch form (the reference's native bidirectional parallel cell), O(S^2) memory."""
    S, DH = q.shape[-2:]
    log_f = F.logsigmoid(f).unsqueeze(-1)  # (B, NH, S, 1)
    cs = torch.cumsum(log_f, dim=-2)
    rcs = torch.cumsum(torch.flip(log_f, dims=(-2,)), dim=-2)
    upper = torch.flip(rcs - rcs.transpose(-2, -1), dims=(-1, -2))  # [t, s] = sum_{u=t}^{s-1} log f_u, s > t
    lower = torch.ones(S, S, dtype=torch.bool, device=q.device).tril_()
    log_D = torch.where(lower, cs - cs.transpose(-2, -1), upper) + i.unsqueeze(-2)
    max_log_D = log_D.amax(dim=-1, keepdim=True)
    C = (q @ (k / math.sqrt(DH)).transpose(-2, -1)) * torch.exp(log_D - max_log_D)
    normalizer = torch.maximum(C.sum(dim=-1, keepdim=True).abs(), torch.exp(-max_log_D))
    return (C / (normalizer + eps)) @ v


# ---------------------------------------------------------------------------------------------- kernels


@triton.jit
def _log_d(b_t, x_t, b_s, x_s, i_s, t, s, S):
    """log D tile (BLOCK_T, BLOCK_S) in fp32; -inf for keys beyond S. b and x are (hi, lo) pairs of fp32 (their sum
    is the fp64 prefix sum): hi_t - hi_s is exact where the two are within a factor 2 (the decays that matter), so
    log D is accurate to its own size, not to the size of the prefix sums (hundreds late in a sequence)."""
    lower = s[None, :] <= t[:, None]
    fwd = (b_t[0][:, None] - b_s[0][None, :]) + (b_t[1][:, None] - b_s[1][None, :])
    rev = (x_s[0][None, :] - x_t[0][:, None]) + (x_s[1][None, :] - x_t[1][:, None])
    log_d = tl.where(lower, fwd, rev) + i_s[None, :]
    return tl.where(s[None, :] < S, log_d, float("-inf")), lower


@triton.jit
def _load_gates(G, row, pos, S):
    """(hi, lo) fp32 parts of a prefix-sum row at positions pos: G holds hi at [0, X*S) and lo at [X*S, 2X*S)."""
    ok = pos < S
    return tl.load(G + row + pos, mask=ok, other=0.0), tl.load(G + row + pos + tl.num_programs(1) * S, mask=ok,
                                                                 other=0.0)


@triton.jit
def _load_keys(K, V, Bc, Xc, I, base, row, s, d, S, DH, IEEE: tl.constexpr):
    """Key tile: k, v (BLOCK_S, BLOCK_D) (fp32 when IEEE), the (hi, lo) gate sums b, x and i (BLOCK_S,) at key
    positions s."""
    s_ok = s < S
    mask = s_ok[:, None] & (d < DH)[None, :]
    k = tl.load(K + base + s[:, None] * DH + d[None, :], mask=mask, other=0.0)
    v = tl.load(V + base + s[:, None] * DH + d[None, :], mask=mask, other=0.0)
    if IEEE:
        k, v = k.to(tl.float32), v.to(tl.float32)
    i = tl.load(I + row + s, mask=s_ok, other=0.0)
    return k, v, _load_gates(Bc, row, s, S), _load_gates(Xc, row, s, S), i


@triton.jit
def _load_queries(Q, Bc, Xc, base, row, t, d, S, DH, IEEE: tl.constexpr):
    """Query tile: q (BLOCK_T, BLOCK_D) (fp32 when IEEE) and the (hi, lo) gate sums b, x (BLOCK_T,) at query
    positions t."""
    t_ok = t < S
    q = tl.load(Q + base + t[:, None] * DH + d[None, :], mask=t_ok[:, None] & (d < DH)[None, :], other=0.0)
    if IEEE:
        q = q.to(tl.float32)
    return q, _load_gates(Bc, row, t, S), _load_gates(Xc, row, t, S)


@triton.jit
def _load_row_grads(DNUM, DDEN, M, base, row, t, d, S, DH):
    """What the backward needs per query: dnum (BLOCK_T, BLOCK_D), dden and the stabiliser m (BLOCK_T,)."""
    t_ok = t < S
    dnum = tl.load(DNUM + base + t[:, None] * DH + d[None, :], mask=t_ok[:, None] & (d < DH)[None, :], other=0.0)
    dden = tl.load(DDEN + row + t, mask=t_ok, other=0.0)
    m = tl.load(M + row + t, mask=t_ok, other=0.0)
    return dnum, dden, m


@triton.jit
def _fwd_kernel(Q, K, V, Bc, Xc, I, H, M, N, DEN, ARG, S, DH, scale, eps,
                BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                IEEE: tl.constexpr):
    pid_t = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.arange(0, BLOCK_D)
    t_ok, d_ok = t < S, d < DH
    base, row = bh * S * DH, bh * S
    q, b_t, x_t = _load_queries(Q, Bc, Xc, base, row, t, d, S, DH, IEEE)

    m = tl.full([BLOCK_T], float("-inf"), tl.float32)
    arg = tl.zeros([BLOCK_T], tl.int32)
    den = tl.zeros([BLOCK_T], tl.float32)
    acc = tl.zeros([BLOCK_T, BLOCK_D], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        k, v, b_s, x_s, i_s = _load_keys(K, V, Bc, Xc, I, base, row, s, d, S, DH, IEEE)
        log_d, _ = _log_d(b_t, x_t, b_s, x_s, i_s, t, s, S)
        blk_max = tl.max(log_d, 1)
        blk_arg = tl.argmax(log_d, 1).to(tl.int32) + s0
        m_new = tl.maximum(m, blk_max)
        arg = tl.where(blk_max > m, blk_arg, arg)
        alpha = tl.exp(m - m_new)
        if IEEE:
            qk = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            qk = tl.dot(q, tl.trans(k))
        c = qk * scale * tl.exp(log_d - m_new[:, None])
        den = den * alpha + tl.sum(c, 1)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(c, v, input_precision="ieee")
        else:  # c as two bf16/fp16 parts: c rounded once is off by 2^-9, which cancelling rows make visible in h
            c_hi = c.to(v.dtype)
            c_lo = (c - c_hi.to(tl.float32)).to(v.dtype)
            acc = acc * alpha[:, None] + tl.dot(c_hi, v) + tl.dot(c_lo, v)
        m = m_new
    n = tl.maximum(tl.abs(den), tl.exp(-m)) + eps
    h = acc / n[:, None]
    tl.store(H + base + t[:, None] * DH + d[None, :], h.to(H.dtype.element_ty), mask=t_ok[:, None] & d_ok[None, :])
    tl.store(M + row + t, m, mask=t_ok)
    tl.store(N + row + t, n, mask=t_ok)
    tl.store(DEN + row + t, den, mask=t_ok)
    tl.store(ARG + row + t, arg, mask=t_ok)


@triton.jit
def _tile_grads(q, k, v, dnum, dden, m_t, b_t, x_t, b_s, x_s, i_s, t, s, S, scale, IEEE: tl.constexpr):
    """Recompute one (BLOCK_T, BLOCK_S) tile: C, dS (gradient of q.k^T) and R = d log D, zero outside S."""
    log_d, lower = _log_d(b_t, x_t, b_s, x_s, i_s, t, s, S)
    e = tl.exp(log_d - m_t[:, None])
    if IEEE:
        qk = tl.dot(q, tl.trans(k), input_precision="ieee")
        dc = tl.dot(dnum, tl.trans(v), input_precision="ieee") + dden[:, None]
    else:
        qk = tl.dot(q, tl.trans(k))
        dc = tl.dot(dnum.to(v.dtype), tl.trans(v)) + dden[:, None]
    c = qk * scale * e
    valid = (s[None, :] < S) & (t[:, None] < S)
    ds = tl.where(valid, dc * e * scale, 0.0)
    r = tl.where(valid, dc * c, 0.0)
    return c, ds, r, lower


@triton.jit
def _bwd_q_kernel(Q, K, V, Bc, Xc, I, M, DNUM, DDEN, DQ, ROWS_LO, ROWS_UP, S, DH, scale,
                  BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, IEEE: tl.constexpr):
    pid_t = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.arange(0, BLOCK_D)
    t_ok, d_ok = t < S, d < DH
    base, row = bh * S * DH, bh * S
    q, b_t, x_t = _load_queries(Q, Bc, Xc, base, row, t, d, S, DH, IEEE)
    dnum, dden, m_t = _load_row_grads(DNUM, DDEN, M, base, row, t, d, S, DH)

    dq = tl.zeros([BLOCK_T, BLOCK_D], tl.float32)
    rows_lo = tl.zeros([BLOCK_T], tl.float32)
    rows_up = tl.zeros([BLOCK_T], tl.float32)
    for s0 in range(0, S, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        k, v, b_s, x_s, i_s = _load_keys(K, V, Bc, Xc, I, base, row, s, d, S, DH, IEEE)
        c, ds, r, lower = _tile_grads(q, k, v, dnum, dden, m_t, b_t, x_t, b_s, x_s, i_s, t, s, S, scale, IEEE)
        if IEEE:
            dq += tl.dot(ds, k, input_precision="ieee")
        else:
            dq += tl.dot(ds.to(k.dtype), k)
        rows_lo += tl.sum(tl.where(lower, r, 0.0), 1)
        rows_up += tl.sum(tl.where(lower, 0.0, r), 1)
    tl.store(DQ + base + t[:, None] * DH + d[None, :], dq, mask=t_ok[:, None] & d_ok[None, :])
    tl.store(ROWS_LO + row + t, rows_lo, mask=t_ok)
    tl.store(ROWS_UP + row + t, rows_up, mask=t_ok)


@triton.jit
def _bwd_kv_kernel(Q, K, V, Bc, Xc, I, M, DNUM, DDEN, DK, DV, COLS_LO, COLS_UP, S, DH, scale,
                   BLOCK_T: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, IEEE: tl.constexpr):
    pid_s = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    s_ok, d_ok = s < S, d < DH
    base, row = bh * S * DH, bh * S
    k, v, b_s, x_s, i_s = _load_keys(K, V, Bc, Xc, I, base, row, s, d, S, DH, IEEE)

    dk = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_S, BLOCK_D], tl.float32)
    cols_lo = tl.zeros([BLOCK_S], tl.float32)
    cols_up = tl.zeros([BLOCK_S], tl.float32)
    for t0 in range(0, S, BLOCK_T):
        t = t0 + tl.arange(0, BLOCK_T)
        q, b_t, x_t = _load_queries(Q, Bc, Xc, base, row, t, d, S, DH, IEEE)
        dnum, dden, m_t = _load_row_grads(DNUM, DDEN, M, base, row, t, d, S, DH)
        c, ds, r, lower = _tile_grads(q, k, v, dnum, dden, m_t, b_t, x_t, b_s, x_s, i_s, t, s, S, scale, IEEE)
        c = tl.where((t[:, None] < S) & (s[None, :] < S), c, 0.0)
        if IEEE:
            dv += tl.dot(tl.trans(c), dnum, input_precision="ieee")
            dk += tl.dot(tl.trans(ds), q, input_precision="ieee")
        else:
            dv += tl.dot(tl.trans(c).to(v.dtype), dnum.to(v.dtype))
            dk += tl.dot(tl.trans(ds).to(q.dtype), q)
        cols_lo += tl.sum(tl.where(lower, r, 0.0), 0)
        cols_up += tl.sum(tl.where(lower, 0.0, r), 0)
    kv_mask = s_ok[:, None] & d_ok[None, :]
    tl.store(DK + base + s[:, None] * DH + d[None, :], dk, mask=kv_mask)
    tl.store(DV + base + s[:, None] * DH + d[None, :], dv, mask=kv_mask)
    tl.store(COLS_LO + row + s, cols_lo, mask=s_ok)
    tl.store(COLS_UP + row + s, cols_up, mask=s_ok)


# ---------------------------------------------------------------------------------------------- autograd


#: tuned launch configurations, written by `python -m benchmarks.mlstm_bidirectional_tune` on a GPU:
#: {"sm90": {"bf16": {"128": {"fwd": [BLOCK_T, BLOCK_S, num_warps, num_stages], "bwd_q": [...], "bwd_kv": [...]}}}}
TUNED_PATH = Path(__file__).with_name("mlstm_bidirectional_tuned.json")
PHASES = ("fwd", "bwd_q", "bwd_kv")


@functools.lru_cache(maxsize=None)
def _tuned_table(path: str) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


#: untuned tiles per head-dim tile: (BLOCK_T, BLOCK_S, warps, stages), the largest of those tried that compile
#: without register spills on sm_80 and sm_90 (`python -m kernels.compile_check`): fp32 `ieee` dot products hold
#: their operands in registers (64 x 64 tiles spilled 5-12 KiB per thread), bf16/fp16 ones use tensor cores
DEFAULT_TILES = {
    "ieee": {32: (32, 32, 4, 2), 64: (32, 32, 8, 2), 128: (32, 16, 8, 2), 256: (16, 16, 8, 2)},
    "tensor_core": {32: (32, 32, 4, 2), 64: (32, 32, 4, 2), 128: (32, 32, 4, 2), 256: (16, 16, 4, 2)},
}


def default_config(S: int, DH: int, ieee: bool = True) -> tuple[int, int, int, int]:
    """Untuned launch parameters (BLOCK_T, BLOCK_S, warps, stages) from `DEFAULT_TILES`, tiles no longer than the
    (power-of-two) sequence."""
    block_d = max(32, triton.next_power_of_2(DH))
    bt, bs, warps, stages = DEFAULT_TILES["ieee" if ieee else "tensor_core"][block_d]
    cap = max(16, triton.next_power_of_2(S))
    return min(bt, cap), min(bs, cap), warps, stages


def launch_config(S: int, DH: int, q: torch.Tensor, phase: str) -> dict:
    """Launch parameters of one kernel: the tuned entry for this GPU architecture, dtype and head dim when
    `mlstm_bidirectional_tuned.json` has one (bf16/fp16 only: fp32 `ieee` tiles keep the small default), else
    `default_config`. Tiles never exceed the (power-of-two) sequence length."""
    bt, bs, warps, stages = default_config(S, DH, ieee=_fp32_dots(q))
    if q.is_cuda and not _fp32_dots(q):
        major, minor = torch.cuda.get_device_capability(q.device)
        dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(q.dtype)
        entry = (_tuned_table(str(TUNED_PATH)).get(f"sm{major}{minor}", {}).get(dtype, {})
                 .get(str(max(16, triton.next_power_of_2(DH))), {}).get(phase))
        if entry:
            bt, bs, warps, stages = entry
    cap = max(16, triton.next_power_of_2(S))
    return dict(BLOCK_T=min(bt, cap), BLOCK_S=min(bs, cap), BLOCK_D=max(16, triton.next_power_of_2(DH)),
                num_warps=warps, num_stages=stages)


def _fp32_dots(q: torch.Tensor) -> bool:
    """fp32 tiles and `ieee` dot products for fp32 inputs, and for bf16 ones in Triton's CPU interpreter (whose bf16
    dot products are wrong in triton 3.8; its fp16 ones are right, so fp16 inputs test the tensor-core path there);
    bf16/fp16 dot products with fp32 accumulation on GPU otherwise."""
    interpreted_bf16 = q.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1"
    return q.dtype not in (torch.bfloat16, torch.float16) or interpreted_bf16


class _MLSTMBidirectional(torch.autograd.Function):
    """Inputs flattened to (X, S, DH) / (X, S); b: inclusive cumsum of logsigmoid(f), x: minus its reversed
    inclusive cumsum, each as fp32 hi and lo parts (`cumulative_gates`); gradients flow to the hi parts."""

    @staticmethod
    def forward(ctx, q, k, v, i, b_hi, x_hi, b_lo, x_lo, eps):
        X, S, DH = q.shape
        if DH > 256:
            raise ValueError(f"head dim {DH} > 256 is not supported by the bidirectional mLSTM kernel")
        q, k, v = (t.contiguous() for t in (q, k, v))
        i = i.float().contiguous()
        b, x = (torch.stack([hi.float(), lo.float()]).contiguous() for hi, lo in ((b_hi, b_lo), (x_hi, x_lo)))
        h = torch.empty_like(q)
        m, n, den = (torch.empty(X, S, device=q.device, dtype=torch.float32) for _ in range(3))
        arg = torch.empty(X, S, device=q.device, dtype=torch.int32)
        cfg = launch_config(S, DH, q, "fwd")
        _fwd_kernel[(triton.cdiv(S, cfg["BLOCK_T"]), X)](q, k, v, b, x, i, h, m, n, den, arg, S, DH, DH**-0.5, eps,
                                                         IEEE=_fp32_dots(q), **cfg)
        ctx.save_for_backward(q, k, v, i, b, x, h, m, n, den, arg)
        ctx.eps = eps
        return h

    @staticmethod
    def backward(ctx, dh):
        q, k, v, i, b, x, h, m, n, den, arg = ctx.saved_tensors
        eps = ctx.eps
        X, S, DH = q.shape
        dh = dh.float()
        dot = (dh * h.float()).sum(-1)  # (X, S): dh_t . h_t
        dnum = (dh / n.unsqueeze(-1)).contiguous()
        # d/d den through max(|den|, exp(-m)): only where |den| is the larger branch
        dden = torch.where(den.abs() > torch.exp(-m), -dot / n * torch.sign(den), torch.zeros_like(den)).contiguous()
        dq, dk, dv = (torch.empty(X, S, DH, device=q.device, dtype=torch.float32) for _ in range(3))
        rows_lo, rows_up, cols_lo, cols_up = (torch.empty(X, S, device=q.device, dtype=torch.float32)
                                              for _ in range(4))
        ieee, scale = _fp32_dots(q), DH**-0.5
        cfg = launch_config(S, DH, q, "bwd_q")
        _bwd_q_kernel[(triton.cdiv(S, cfg["BLOCK_T"]), X)](q, k, v, b, x, i, m, dnum, dden, dq, rows_lo, rows_up,
                                                            S, DH, scale, IEEE=ieee, **cfg)
        cfg = launch_config(S, DH, q, "bwd_kv")
        _bwd_kv_kernel[(triton.cdiv(S, cfg["BLOCK_S"]), X)](q, k, v, b, x, i, m, dnum, dden, dk, dv, cols_lo,
                                                             cols_up, S, DH, scale, IEEE=ieee, **cfg)
        db = rows_lo - cols_lo
        dx = cols_up - rows_up
        di = cols_lo + cols_up
        # the stabiliser m_t = log D[t, arg_t]: h depends on it only through eps, d h_t / d m_t = -h_t eps / n_t
        dm = -dot * eps / n
        t = torch.arange(S, device=q.device).expand(X, S)
        s_star = arg.long()
        lower = s_star <= t
        dm_lo, dm_up = torch.where(lower, dm, 0.0), torch.where(lower, 0.0, dm)
        db = db + dm_lo
        db.scatter_add_(1, s_star, -dm_lo)
        dx = dx - dm_up
        dx.scatter_add_(1, s_star, dm_up)
        di.scatter_add_(1, s_star, dm)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), di, db, dx, None, None, None


Gates = tuple[torch.Tensor, torch.Tensor]


def cumulative_gates(f: torch.Tensor) -> tuple[Gates, Gates]:
    """(b, x) with b_t - b_s = sum_{u=s+1}^{t} lf_u (lower triangle) and x_s - x_t = sum_{u=t}^{s-1} lf_u (upper),
    lf = logsigmoid(f), each summed in fp64 and returned as fp32 (hi, lo) parts, hi + lo = the fp64 sum (lo carries
    no gradient). In fp32 a prefix sum of hundreds is off by ~1e-5, rounded differently by different cumsum
    implementations (CPU, CUDA); the difference keeps that error while the decays it forms are small, and a
    near-cancelling normaliser turns it into output errors up to 1e-2 relative (seen on an H100)."""
    with torch.autocast(device_type=f.device.type, enabled=False):
        lf = F.logsigmoid(f.double())
        return _hi_lo(lf.cumsum(-1)), _hi_lo(-lf.flip(-1).cumsum(-1).flip(-1))


def _hi_lo(y: torch.Tensor) -> Gates:
    hi = y.float()
    return hi, (y.detach() - hi.detach().double()).float()


def mlstm_bidirectional(q, k, v, i, f, eps: float = EPS) -> torch.Tensor:
    """Native bidirectional mLSTM in linear memory (Triton). q, k, v (..., S, DH); i, f (..., S) -> h like q.

    Same math as `mlstm_bidirectional_ref`; gradients for q, k, v, i and f.
    """
    lead, (S, DH) = q.shape[:-2], q.shape[-2:]
    (b_hi, b_lo), (x_hi, x_lo) = cumulative_gates(f)
    flat = lambda t, *tail: t.reshape(-1, S, *tail)  # noqa: E731
    h = _MLSTMBidirectional.apply(flat(q, DH), flat(k, DH), flat(v, DH), flat(i.float()), flat(b_hi), flat(x_hi),
                                  flat(b_lo), flat(x_lo), eps)
    return h.reshape(*lead, S, DH)

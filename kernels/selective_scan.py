"""Mamba's selective scan (S6) as two Triton kernels: Mamba and Caduceus on a GPU without mamba_ssm's CUDA
extension (a source build that needs nvcc and a matching torch).

`dnax.models.layers.selective_scan.selective_scan(..., triton=True)` runs them inside the same autograd Function as
its PyTorch loops, with the same time-major layouts and the same chunked recomputation:

    y, last, entry = scan_forward(u, delta, A, B, C, chunk)
    du, ddelta, dA, dB, dC = scan_backward(dy, dlast, u, delta, A, B, C, entry, chunk)

u, delta: (L, b, G, H); A: (G, H, N); B, C: (L, b, G, 1, N) (variable, one per group); all fp32 contiguous. Per
channel (g, h) and state n:  h[t] = exp(delta[t] A) h[t-1] + delta[t] u[t] B[t],  y[t] = sum_n C[t] h[t].

Forward: one program per (batch, group, block of BLOCK_H channels) carries its (BLOCK_H, N) state through the
whole sequence in registers, writes y[t] and, every `chunk` steps, the state entering the chunk (`entry`,
(ceil(L / chunk), b, G, H, N)). Backward: the same programs walk the chunks in reverse; each recomputes its chunk's
states from the entry state into a scratch buffer, then runs the adjoint recurrence
    g[t] = C[t] dy[t] + exp(delta[t+1] A) g[t+1]      (g after the last step: d last)
backwards, writing du, ddelta per step, per-block partial sums of dB, dC (summed over channel blocks afterwards:
deterministic, no atomics) and accumulating dA in registers. fp32 throughout. Any L, H, N <= 256 (masked). On CPU
the kernels run only under `TRITON_INTERPRET=1`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["scan_forward", "scan_backward"]


@triton.jit
def _program_tile(A, G, H, N, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's batch * G + group, masks of its channels, states and (channel, state) tile, its A tile, and
    its offsets within one step of u/delta/y (channel), of a (b, G, H, N) state (channel, n) and of B/C (n)."""
    bg = tl.program_id(0)
    hh = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    nn = tl.arange(0, BLOCK_N)
    h_ok, n_ok = hh < H, nn < N
    hn_ok = h_ok[:, None] & n_ok[None, :]
    a_coef = tl.load(A + ((bg % G) * H + hh[:, None]) * N + nn[None, :], mask=hn_ok, other=0.0)
    ch_off = bg * H + hh
    return bg, h_ok, n_ok, hn_ok, a_coef, ch_off, ch_off[:, None] * N + nn[None, :], bg * N + nn


@triton.jit
def _fwd_kernel(U, DT, A, Bm, Cm, Y, ENTRY, LAST, L, BG, G, H, N, CHUNK,
                BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    state = tl.zeros((BLOCK_H, BLOCK_N), dtype=tl.float32)
    for t in range(0, L):
        if t % CHUNK == 0:
            tl.store(ENTRY + tl.cast(t // CHUNK, tl.int64) * BG * H * N + st_off, state, mask=hn_ok)
        step = tl.cast(t, tl.int64)
        u = tl.load(U + step * BG * H + ch_off, mask=h_ok, other=0.0)
        dt = tl.load(DT + step * BG * H + ch_off, mask=h_ok, other=0.0)
        b = tl.load(Bm + step * BG * N + n_off, mask=n_ok, other=0.0)
        c = tl.load(Cm + step * BG * N + n_off, mask=n_ok, other=0.0)
        state = tl.exp(dt[:, None] * a_coef) * state + (dt * u)[:, None] * b[None, :]
        tl.store(Y + step * BG * H + ch_off, tl.sum(state * c[None, :], axis=1), mask=h_ok)
    tl.store(LAST + st_off, state, mask=hn_ok)


@triton.jit
def _bwd_kernel(U, DT, A, Bm, Cm, DY, ENTRY, DLAST, SCRATCH, DU, DDT, DA, DB, DC, L, BG, G, H, N, CHUNK,
                BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    part = tl.cast(tl.program_id(1), tl.int64) * L * BG * N  # this channel block's slice of the dB / dC partials
    carry = tl.load(DLAST + st_off, mask=hn_ok, other=0.0)  # exp(delta[t+1] A) g[t+1]; d last after the last step
    da = tl.zeros((BLOCK_H, BLOCK_N), dtype=tl.float32)
    n_chunks = tl.cdiv(L, CHUNK)
    for back in range(0, n_chunks):
        ci = n_chunks - 1 - back
        t0 = ci * CHUNK
        t1 = tl.minimum(t0 + CHUNK, L)
        # the chunk's states: SCRATCH[k] = state after step t0 + k - 1 (SCRATCH[0] = the entry state)
        state = tl.load(ENTRY + tl.cast(ci, tl.int64) * BG * H * N + st_off, mask=hn_ok, other=0.0)
        tl.store(SCRATCH + st_off, state, mask=hn_ok)
        for t in range(t0, t1):
            step = tl.cast(t, tl.int64)
            u = tl.load(U + step * BG * H + ch_off, mask=h_ok, other=0.0)
            dt = tl.load(DT + step * BG * H + ch_off, mask=h_ok, other=0.0)
            b = tl.load(Bm + step * BG * N + n_off, mask=n_ok, other=0.0)
            state = tl.exp(dt[:, None] * a_coef) * state + (dt * u)[:, None] * b[None, :]
            tl.store(SCRATCH + tl.cast(t - t0 + 1, tl.int64) * BG * H * N + st_off, state, mask=hn_ok)
        tl.debug_barrier()
        for k in range(0, t1 - t0):
            t = t1 - 1 - k
            step = tl.cast(t, tl.int64)
            u = tl.load(U + step * BG * H + ch_off, mask=h_ok, other=0.0)
            dt = tl.load(DT + step * BG * H + ch_off, mask=h_ok, other=0.0)
            dy = tl.load(DY + step * BG * H + ch_off, mask=h_ok, other=0.0)
            b = tl.load(Bm + step * BG * N + n_off, mask=n_ok, other=0.0)
            c = tl.load(Cm + step * BG * N + n_off, mask=n_ok, other=0.0)
            slot = tl.cast(t - t0, tl.int64) * BG * H * N
            h_prev = tl.load(SCRATCH + slot + st_off, mask=hn_ok, other=0.0)
            h_t = tl.load(SCRATCH + slot + BG * H * N + st_off, mask=hn_ok, other=0.0)
            a = tl.exp(dt[:, None] * a_coef)
            gg = dy[:, None] * c[None, :] + carry
            tl.store(DC + part + step * BG * N + n_off, tl.sum(dy[:, None] * h_t, axis=0), mask=n_ok)
            tl.store(DB + part + step * BG * N + n_off, tl.sum(gg * (dt * u)[:, None], axis=0), mask=n_ok)
            dx = tl.sum(gg * b[None, :], axis=1)             # d (delta u)
            w = gg * a * h_prev
            tl.store(DU + step * BG * H + ch_off, dx * dt, mask=h_ok)
            tl.store(DDT + step * BG * H + ch_off, dx * u + tl.sum(w * a_coef, axis=1), mask=h_ok)
            da += dt[:, None] * w
            carry = a * gg
        tl.debug_barrier()                                  # the next chunk rewrites SCRATCH
    tl.store(DA + st_off, da, mask=hn_ok)


def _launch(G: int, H: int, N: int, BG: int) -> tuple[tuple[int, int], dict]:
    """Grid and launch parameters: (BLOCK_H, BLOCK_N) state tiles of 1024 elements with 4 warps, one stage, which
    `python -m kernels.compile_check` finds spill-free on sm_80/sm_90 (2048 spill in the backward)."""
    if N > 256:
        raise ValueError(f"selective scan Triton kernel: d_state {N} > 256")
    block_n = max(16, triton.next_power_of_2(N))
    block_h = max(16, min(triton.next_power_of_2(H), 1024 // block_n))
    return (BG, triton.cdiv(H, block_h)), dict(BLOCK_H=block_h, BLOCK_N=block_n, num_warps=4, num_stages=1)


def scan_forward(u, delta, A, B, C, chunk: int):
    """(y (L, b, G, H), last state (b, G, H, N), entry states (ceil(L / chunk), b, G, H, N))."""
    L, b, G, H = u.shape
    N = A.shape[-1]
    grid, cfg = _launch(G, H, N, b * G)
    u, delta, A, B, C = (x.contiguous() for x in (u, delta, A, B, C))
    y = torch.empty_like(u)
    entry = u.new_empty(triton.cdiv(L, chunk), b, G, H, N)
    last = u.new_empty(b, G, H, N)
    _fwd_kernel[grid](u, delta, A, B, C, y, entry, last, L, b * G, G, H, N, chunk, **cfg)
    return y, last, entry


def scan_backward(dy, dlast, u, delta, A, B, C, entry, chunk: int):
    """Gradients (du, ddelta, dA, dB, dC) in the layouts of the inputs."""
    L, b, G, H = u.shape
    N = A.shape[-1]
    grid, cfg = _launch(G, H, N, b * G)
    u, delta, A, B, C = (x.contiguous() for x in (u, delta, A, B, C))
    blocks = grid[1]
    scratch = u.new_empty(min(chunk, L) + 1, b, G, H, N)
    du, ddelta = torch.empty_like(u), torch.empty_like(u)
    da = u.new_empty(b, G, H, N)
    db, dc = (u.new_empty(blocks, L, b, G, N) for _ in range(2))
    dlast = torch.zeros(b, G, H, N, device=u.device) if dlast is None else dlast.float().contiguous()
    _bwd_kernel[grid](u, delta, A, B, C, dy.float().contiguous(), entry, dlast, scratch, du, ddelta, da, db, dc,
                      L, b * G, G, H, N, chunk, **cfg)
    return du, ddelta, da.sum(0), db.sum(0).unsqueeze(3), dc.sum(0).unsqueeze(3)

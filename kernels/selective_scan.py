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
deterministic, no atomics) and accumulating dA in registers. fp32 throughout. Any L, H, N <= 256 (masked).

Time splits (grid axis 2, `time_splits`): where batch x groups x channel blocks would leave most of the GPU idle
(2 x 32768 tokens: 8 programs), the sequence is cut into splits of whole chunks walked in parallel. Both
recurrences are linear in their carried value, so each split first runs from zero (pass 1), a short sequential
pass joins the splits (pass 2: x -> exp(A sum(delta over the split)) x + the split's zero-start result, forwards
for the state, backwards from d last for the adjoint carry), and the splits then run from their true entry values
(pass 3, the kernels above). Each program's sequential walk drops from L steps to about 2 L / splits (forward)
and 3 L / splits (backward); not yet timed on a GPU. On CPU the kernels run only
under `TRITON_INTERPRET=1`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["scan_forward", "scan_backward", "time_splits", "split_layout"]

#: the fewest chunks a time split holds (bounds the number of splits, and so the sequential joining pass)
MIN_SPLIT_CHUNKS = 4


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
def _advance(U, DT, Bm, state, a_coef, t, BG, H, N, ch_off, n_off, h_ok, n_ok):
    """The state after step t: exp(delta[t] A) state + delta[t] u[t] B[t]."""
    step = tl.cast(t, tl.int64)
    u = tl.load(U + step * BG * H + ch_off, mask=h_ok, other=0.0)
    dt = tl.load(DT + step * BG * H + ch_off, mask=h_ok, other=0.0)
    b = tl.load(Bm + step * BG * N + n_off, mask=n_ok, other=0.0)
    return tl.exp(dt[:, None] * a_coef) * state + (dt * u)[:, None] * b[None, :]


@triton.jit
def _split_bounds(L, SPLIT):
    """This program's time split (grid axis 2) and its steps [t0, t1) (SPLIT steps, a multiple of the chunk; the
    last split ends at L)."""
    split = tl.program_id(2)
    t0 = split * SPLIT
    return split, t0, tl.minimum(t0 + SPLIT, L)


@triton.jit
def _fwd_local_kernel(U, DT, A, Bm, LOCAL, L, BG, G, H, N, SPLIT, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    """Pass 1 of a split forward: each split's final state from a zero entry state (LOCAL[split])."""
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    split, t0, t1 = _split_bounds(L, SPLIT)
    state = tl.zeros((BLOCK_H, BLOCK_N), dtype=tl.float32)
    for t in range(t0, t1):
        state = _advance(U, DT, Bm, state, a_coef, t, BG, H, N, ch_off, n_off, h_ok, n_ok)
    tl.store(LOCAL + tl.cast(split, tl.int64) * BG * H * N + st_off, state, mask=hn_ok)


@triton.jit
def _combine_kernel(A, LOCAL, SUMDT, START, INIT, SPLITS, BG, G, H, N, REVERSE: tl.constexpr,
                    BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    """Pass 2: the state entering each split, INIT[k], from START and the splits' zero-entry results LOCAL[k]:
    x -> exp(A sum(delta over split k)) x + LOCAL[k], applied across the splits in order (forward state) or in
    reverse order (the backward's adjoint carry; START = d last)."""
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    x = tl.load(START + st_off, mask=hn_ok, other=0.0)
    for j in range(0, SPLITS):
        k = SPLITS - 1 - j if REVERSE else j
        slot = tl.cast(k, tl.int64) * BG * H * N
        tl.store(INIT + slot + st_off, x, mask=hn_ok)
        sum_dt = tl.load(SUMDT + tl.cast(k, tl.int64) * BG * H + ch_off, mask=h_ok, other=0.0)
        x = tl.exp(sum_dt[:, None] * a_coef) * x + tl.load(LOCAL + slot + st_off, mask=hn_ok, other=0.0)


@triton.jit
def _fwd_kernel(U, DT, A, Bm, Cm, Y, INIT, ENTRY, LAST, L, BG, G, H, N, CHUNK, SPLIT,
                BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    split, t0, t1 = _split_bounds(L, SPLIT)
    state = tl.load(INIT + tl.cast(split, tl.int64) * BG * H * N + st_off, mask=hn_ok, other=0.0)
    for t in range(t0, t1):
        if t % CHUNK == 0:
            tl.store(ENTRY + tl.cast(t // CHUNK, tl.int64) * BG * H * N + st_off, state, mask=hn_ok)
        state = _advance(U, DT, Bm, state, a_coef, t, BG, H, N, ch_off, n_off, h_ok, n_ok)
        step = tl.cast(t, tl.int64)
        c = tl.load(Cm + step * BG * N + n_off, mask=n_ok, other=0.0)
        tl.store(Y + step * BG * H + ch_off, tl.sum(state * c[None, :], axis=1), mask=h_ok)
    if t1 == L:
        tl.store(LAST + st_off, state, mask=hn_ok)


@triton.jit
def _bwd_local_kernel(DT, A, Cm, DY, LOCAL, L, BG, G, H, N, SPLIT, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    """Pass 1 of a split backward: the adjoint carry leaving each split at its start, from a zero carry entering
    at its end (LOCAL[split])."""
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    split, t0, t1 = _split_bounds(L, SPLIT)
    carry = tl.zeros((BLOCK_H, BLOCK_N), dtype=tl.float32)
    for k in range(0, t1 - t0):
        step = tl.cast(t1 - 1 - k, tl.int64)
        dt = tl.load(DT + step * BG * H + ch_off, mask=h_ok, other=0.0)
        dy = tl.load(DY + step * BG * H + ch_off, mask=h_ok, other=0.0)
        c = tl.load(Cm + step * BG * N + n_off, mask=n_ok, other=0.0)
        carry = tl.exp(dt[:, None] * a_coef) * (dy[:, None] * c[None, :] + carry)
    tl.store(LOCAL + tl.cast(split, tl.int64) * BG * H * N + st_off, carry, mask=hn_ok)


@triton.jit
def _bwd_kernel(U, DT, A, Bm, Cm, DY, ENTRY, INIT, SCRATCH, DU, DDT, DA, DB, DC, L, BG, G, H, N, CHUNK, SPLIT,
                BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    bg, h_ok, n_ok, hn_ok, a_coef, ch_off, st_off, n_off = _program_tile(A, G, H, N, BLOCK_H, BLOCK_N)
    split, s0, s1 = _split_bounds(L, SPLIT)
    part = tl.cast(tl.program_id(1), tl.int64) * L * BG * N  # this channel block's slice of the dB / dC partials
    # exp(delta[t+1] A) g[t+1] after the split's last step (INIT: one per split)
    carry = tl.load(INIT + tl.cast(split, tl.int64) * BG * H * N + st_off, mask=hn_ok, other=0.0)
    da = tl.zeros((BLOCK_H, BLOCK_N), dtype=tl.float32)
    c0 = s0 // CHUNK
    n_chunks = tl.cdiv(s1, CHUNK) - c0
    for back in range(0, n_chunks):
        ci = c0 + n_chunks - 1 - back
        t0 = ci * CHUNK
        t1 = tl.minimum(t0 + CHUNK, L)
        # the chunk's states in this split's SCRATCH rows (split * (CHUNK + 1) + k, read off the program id rather
        # than kept live: registers are tight): row k = state after step t0 + k - 1 (row 0 = the entry state)
        state = tl.load(ENTRY + tl.cast(ci, tl.int64) * BG * H * N + st_off, mask=hn_ok, other=0.0)
        tl.store(SCRATCH + tl.cast(tl.program_id(2) * (CHUNK + 1), tl.int64) * BG * H * N + st_off, state,
                 mask=hn_ok)
        for t in range(t0, t1):
            state = _advance(U, DT, Bm, state, a_coef, t, BG, H, N, ch_off, n_off, h_ok, n_ok)
            row = tl.program_id(2) * (CHUNK + 1) + t - t0 + 1
            tl.store(SCRATCH + tl.cast(row, tl.int64) * BG * H * N + st_off, state, mask=hn_ok)
        tl.debug_barrier()
        for k in range(0, t1 - t0):
            t = t1 - 1 - k
            step = tl.cast(t, tl.int64)
            u = tl.load(U + step * BG * H + ch_off, mask=h_ok, other=0.0)
            dt = tl.load(DT + step * BG * H + ch_off, mask=h_ok, other=0.0)
            dy = tl.load(DY + step * BG * H + ch_off, mask=h_ok, other=0.0)
            b = tl.load(Bm + step * BG * N + n_off, mask=n_ok, other=0.0)
            c = tl.load(Cm + step * BG * N + n_off, mask=n_ok, other=0.0)
            slot = tl.cast(tl.program_id(2) * (CHUNK + 1) + t - t0, tl.int64) * BG * H * N
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
        tl.debug_barrier()                                  # the next chunk rewrites this split's SCRATCH rows
    tl.store(DA + tl.cast(tl.program_id(2), tl.int64) * BG * H * N + st_off, da, mask=hn_ok)  # one per split


def _launch(G: int, H: int, N: int, BG: int) -> tuple[tuple[int, int], dict]:
    """Grid and launch parameters: (BLOCK_H, BLOCK_N) state tiles of 1024 elements with 4 warps, one stage, which
    `python -m kernels.compile_check` finds spill-free on sm_80/sm_90 (2048 spill in the backward)."""
    if N > 256:
        raise ValueError(f"selective scan Triton kernel: d_state {N} > 256")
    block_n = max(16, triton.next_power_of_2(N))
    block_h = max(16, min(triton.next_power_of_2(H), 1024 // block_n))
    return (BG, triton.cdiv(H, block_h)), dict(BLOCK_H=block_h, BLOCK_N=block_n, num_warps=4, num_stages=1)


def time_splits(L: int, chunk: int, programs: int, device: torch.device) -> int:
    """Time splits for a launch of `programs` (batch x group x channel-block) sequential programs: 1 (one program
    walks the whole sequence) unless they would leave more than half of the GPU's multiprocessors idle (long
    sequences at small batch, e.g. 2 x 32768: 8 programs for Mamba's 256 channels), then enough splits of whole
    chunks (at least MIN_SPLIT_CHUNKS each) for about two programs per multiprocessor. CPU (interpreter): 1."""
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    if 2 * programs >= sms:
        return 1
    return max(1, min(triton.cdiv(2 * sms, programs), triton.cdiv(L, chunk) // MIN_SPLIT_CHUNKS))


def split_layout(L: int, chunk: int, wanted: int) -> tuple[int, int]:
    """(number of splits, steps per split) for about `wanted` splits of whole chunks: the count actually used can
    be lower (e.g. 32 for 33 wanted at L = 32768, chunk 64), and is at most the number of chunks."""
    split = triton.cdiv(triton.cdiv(L, chunk), max(1, wanted)) * chunk
    return triton.cdiv(L, split), split


def _split_plan(delta, chunk: int, programs: int, splits: int | None) -> tuple[int, int, torch.Tensor | None]:
    """(number of splits, steps per split (a multiple of `chunk`), each split's sum of delta (splits, b, G, H) or
    None for one split). `splits`: a count to use instead of `time_splits` (tests)."""
    L = delta.shape[0]
    wanted = time_splits(L, chunk, programs, delta.device) if splits is None else splits
    n, split = split_layout(L, chunk, wanted)
    if n == 1:
        return 1, split, None
    full = (n - 1) * split  # the last split may be shorter
    sums = delta[:full].view(n - 1, split, *delta.shape[1:]).sum(1)
    return n, split, torch.cat([sums, delta[full:].sum(0, keepdim=True)])


def _combine(A, local, sum_dt, start, grid, cfg, reverse: bool):
    """Each split's entry state (forward) or entry carry (backward, `reverse`): (splits, b, G, H, N)."""
    n, b, G, H, N = local.shape
    init = torch.empty_like(local)
    _combine_kernel[grid[:2]](A, local, sum_dt, start.contiguous(), init, n, b * G, G, H, N, REVERSE=reverse, **cfg)
    return init


def scan_forward(u, delta, A, B, C, chunk: int, splits: int | None = None):
    """(y (L, b, G, H), last state (b, G, H, N), entry states (ceil(L / chunk), b, G, H, N)). `splits`: time
    splits to use instead of `time_splits`' choice."""
    L, b, G, H = u.shape
    N = A.shape[-1]
    grid, cfg = _launch(G, H, N, b * G)
    u, delta, A, B, C = (x.contiguous() for x in (u, delta, A, B, C))
    n, split, sum_dt = _split_plan(delta, chunk, grid[0] * grid[1], splits)
    grid = (*grid, n)
    zero = u.new_zeros(1, b, G, H, N)
    if n == 1:
        init = zero
    else:
        local = u.new_empty(n, b, G, H, N)
        _fwd_local_kernel[grid](u, delta, A, B, local, L, b * G, G, H, N, split, **cfg)
        init = _combine(A, local, sum_dt, zero[0], grid, cfg, reverse=False)
    y = torch.empty_like(u)
    entry = u.new_empty(triton.cdiv(L, chunk), b, G, H, N)
    last = u.new_empty(b, G, H, N)
    _fwd_kernel[grid](u, delta, A, B, C, y, init, entry, last, L, b * G, G, H, N, chunk, split, **cfg)
    return y, last, entry


def scan_backward(dy, dlast, u, delta, A, B, C, entry, chunk: int, splits: int | None = None):
    """Gradients (du, ddelta, dA, dB, dC) in the layouts of the inputs. `splits` as in `scan_forward`."""
    L, b, G, H = u.shape
    N = A.shape[-1]
    grid, cfg = _launch(G, H, N, b * G)
    u, delta, A, B, C = (x.contiguous() for x in (u, delta, A, B, C))
    dy = dy.float().contiguous()
    dlast = torch.zeros(b, G, H, N, device=u.device) if dlast is None else dlast.float().contiguous()
    blocks = grid[1]
    n, split, sum_dt = _split_plan(delta, chunk, grid[0] * grid[1], splits)
    grid = (*grid, n)
    if n == 1:
        init = dlast.unsqueeze(0)
    else:
        local = u.new_empty(n, b, G, H, N)
        _bwd_local_kernel[grid](delta, A, C, dy, local, L, b * G, G, H, N, split, **cfg)
        init = _combine(A, local, sum_dt, dlast, grid, cfg, reverse=True)
    scratch = u.new_empty(n, min(chunk, L) + 1, b, G, H, N)  # n > 1 only where L > chunk: rows of chunk + 1
    du, ddelta = torch.empty_like(u), torch.empty_like(u)
    da = u.new_empty(n, b, G, H, N)
    db, dc = (u.new_empty(blocks, L, b, G, N) for _ in range(2))
    _bwd_kernel[grid](u, delta, A, B, C, dy, entry, init, scratch, du, ddelta, da, db, dc,
                      L, b * G, G, H, N, chunk, split, **cfg)
    return du, ddelta, da.sum((0, 1)), db.sum(0).unsqueeze(3), dc.sum(0).unsqueeze(3)

"""The sLSTM recurrence's two time loops (forward, backward) as Triton kernels: a fast GPU sLSTM without the
xlstm package's JIT-built CUDA extension. `dnax.models.layers.slstm.slstm_recurrence(wx, r, triton=True)` runs
them inside the same autograd Function as its PyTorch loops (same layouts; d R is one batched matmul there):

    raw, y, hl = forward_loop(wx, r)     # wx (S, NH, B, 4*DH) gate pre-activations incl. bias, per head [gate, unit]
                                         # r (NH, DH, 4*DH) recurrent kernel, CUDA layout [head, in, gate*DH + out]
    draw = backward_loop(dy, r, raw, y, hl)

The normalised form of the PyTorch Function (its docstring derives it), gate order (i, f, z, o), zero initial
state, stabiliser m_t = log N_t:

    raw_t = wx_t + y_{t-1} R,   log N_t = logaddexp(logsigmoid(f_t) + log N_{t-1}, i_t),
    h_t = lerp(h_{t-1}, tanh(z_t), exp(i_t - log N_t)),   y_t = sigmoid(o_t) h_t,     (log N_0 = i_0, h_0 = tanh z_0)

One program owns one head and a block of BLOCK_B sequences for the whole sequence: its four (DH, DH) gate blocks of
R stay in registers, the carried state (y, h, log N forward; dc, dn and the previous step's gate gradients
backward) never leaves the chip, and each step reads wx_t and writes raw_t, y_t, h_t, log N_t (forward) or
d raw_t (backward) once. Compute is fp32 with `ieee` dot products (the recurrence compounds rounding over
thousands of steps). Head dims up to 64 (padded to a power of two, at least 16; see `_launch`); any S and B
(masked). On CPU the kernels run only under `TRITON_INTERPRET=1`.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["forward_loop", "backward_loop"]

BLOCK_B = 16  # sequences per program: the smallest tile `tl.dot` takes


@triton.jit
def _logsigmoid(x):
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 * _sigmoid(2.0 * x) - 1.0


@triton.jit
def _program_tile(B, DH, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's head, unit indices d, masks of its (BLOCK_B, BLOCK_D) tile and of R's (DH, DH) gate blocks,
    and its offsets within one time step of a (head, b, gate, unit) and a (head, b, unit) tensor."""
    head = tl.program_id(0)
    b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    d = tl.arange(0, BLOCK_D)
    b_ok, d_ok = b < B, d < DH
    gate_off = (head * B + b[:, None]) * 4 * DH + d[None, :]
    unit_off = (head * B + b[:, None]) * DH + d[None, :]
    return head, d, b_ok[:, None] & d_ok[None, :], d_ok[:, None] & d_ok[None, :], gate_off, unit_off


@triton.jit
def _gate_blocks(R, off, mask, DH):
    """R's four gate blocks at offsets `off` (+ g*DH), fp32."""
    return (tl.load(R + off, mask=mask, other=0.0), tl.load(R + off + DH, mask=mask, other=0.0),
            tl.load(R + off + 2 * DH, mask=mask, other=0.0), tl.load(R + off + 3 * DH, mask=mask, other=0.0))


@triton.jit
def _fwd_kernel(WX, R, RAW, Y, H, LOGN, S, NH, B, DH, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    head, d, mask, r_mask, gate_off, unit_off = _program_tile(B, DH, BLOCK_B, BLOCK_D)
    # R's gate blocks (DH_in, DH_out): r[head, in, g*DH + out]
    r_i, r_f, r_z, r_o = _gate_blocks(R, head * DH * 4 * DH + d[:, None] * 4 * DH + d[None, :], r_mask, DH)
    y = tl.zeros((BLOCK_B, BLOCK_D), dtype=tl.float32)
    h = tl.zeros((BLOCK_B, BLOCK_D), dtype=tl.float32)
    logn = tl.full((BLOCK_B, BLOCK_D), float("-inf"), dtype=tl.float32)
    for t in range(0, S):
        step = tl.cast(t, tl.int64) * NH * B * DH    # a 64-bit scalar (S * NH * B * 4 * DH may pass 2**31)
        wx_t, raw_t, y_t, h_t, logn_t = WX + 4 * step, RAW + 4 * step, Y + step, H + step, LOGN + step
        i = tl.load(wx_t + gate_off, mask=mask, other=0.0) + tl.dot(y, r_i, input_precision="ieee")
        f = tl.load(wx_t + gate_off + DH, mask=mask, other=0.0) + tl.dot(y, r_f, input_precision="ieee")
        z = tl.load(wx_t + gate_off + 2 * DH, mask=mask, other=0.0) + tl.dot(y, r_z, input_precision="ieee")
        o = tl.load(wx_t + gate_off + 3 * DH, mask=mask, other=0.0) + tl.dot(y, r_o, input_precision="ieee")
        a = _logsigmoid(f) + logn                               # -inf at t = 0
        hi = tl.maximum(a, i)
        logn = hi + tl.log(1.0 + tl.exp(tl.minimum(a, i) - hi))
        tz = _tanh(z)
        h = h + tl.exp(i - logn) * (tz - h)                     # alpha = 1 at t = 0: h = tanh z
        y = _sigmoid(o) * h
        y = tl.where(mask, y, 0.0)                              # padded units must not feed the next dot
        tl.store(raw_t + gate_off, i, mask=mask)
        tl.store(raw_t + gate_off + DH, f, mask=mask)
        tl.store(raw_t + gate_off + 2 * DH, z, mask=mask)
        tl.store(raw_t + gate_off + 3 * DH, o, mask=mask)
        tl.store(y_t + unit_off, y, mask=mask)
        tl.store(h_t + unit_off, h, mask=mask)
        tl.store(logn_t + unit_off, logn, mask=mask)


@triton.jit
def _bwd_kernel(DY, R, RAW, Y, H, LOGN, DRAW, S, NH, B, DH, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    """Backwards over time. With ig = exp(i - log N), fg_t = exp(logsigmoid(f_t) + log N_{t-1} - log N_t) (0 at
    t = 0), tz = tanh z, so = sigmoid o:  dy_t += d raw_{t+1} R^T;  dc = fg_{t+1} dc' + so dy;
    dn = fg_{t+1} dn' - y dy;  di = ig (tz dc + dn);  df = fg (1 - sigmoid f)(h_{t-1} dc + dn);
    dz = ig (1 - tz^2) dc;  do = (1 - so) y dy."""
    head, d, mask, r_mask, gate_off, unit_off = _program_tile(B, DH, BLOCK_B, BLOCK_D)
    # transposed gate blocks (DH_out, DH_in) of R: rt[out, in] = r[head, in, g*DH + out]
    rt_i, rt_f, rt_z, rt_o = _gate_blocks(R, head * DH * 4 * DH + d[None, :] * 4 * DH + d[:, None], r_mask, DH)
    zeros = tl.zeros((BLOCK_B, BLOCK_D), dtype=tl.float32)
    dc, dn = zeros, zeros
    di_next, df_next, dz_next, do_next, fg_next = zeros, zeros, zeros, zeros, zeros
    for back in range(0, S):
        t = S - 1 - back
        step = tl.cast(t, tl.int64) * NH * B * DH
        raw_t, draw_t, y_t, h_t, logn_t = RAW + 4 * step, DRAW + 4 * step, Y + step, H + step, LOGN + step
        dy = tl.load(DY + step + unit_off, mask=mask, other=0.0)
        dy += tl.dot(di_next, rt_i, input_precision="ieee") + tl.dot(df_next, rt_f, input_precision="ieee")
        dy += tl.dot(dz_next, rt_z, input_precision="ieee") + tl.dot(do_next, rt_o, input_precision="ieee")
        i = tl.load(raw_t + gate_off, mask=mask, other=0.0)
        f = tl.load(raw_t + gate_off + DH, mask=mask, other=0.0)
        z = tl.load(raw_t + gate_off + 2 * DH, mask=mask, other=0.0)
        o = tl.load(raw_t + gate_off + 3 * DH, mask=mask, other=0.0)
        y = tl.load(y_t + unit_off, mask=mask, other=0.0)
        logn = tl.load(logn_t + unit_off, mask=mask, other=0.0)
        if t > 0:
            h_prev = tl.load(h_t - NH * B * DH + unit_off, mask=mask, other=0.0)
            logn_prev = tl.load(logn_t - NH * B * DH + unit_off, mask=mask, other=0.0)
            fg = tl.exp(_logsigmoid(f) + logn_prev - logn)
        else:
            h_prev = zeros
            fg = zeros
        so = _sigmoid(o)
        tz = _tanh(z)
        ig = tl.exp(i - logn)
        dc = fg_next * dc + so * dy
        dn = fg_next * dn - y * dy
        di = ig * (tz * dc + dn)
        df = fg * (1.0 - _sigmoid(f)) * (h_prev * dc + dn)
        dz = ig * (1.0 - tz * tz) * dc
        do = (1.0 - so) * y * dy
        di, df, dz, do = (tl.where(mask, di, 0.0), tl.where(mask, df, 0.0), tl.where(mask, dz, 0.0),
                          tl.where(mask, do, 0.0))
        tl.store(draw_t + gate_off, di, mask=mask)
        tl.store(draw_t + gate_off + DH, df, mask=mask)
        tl.store(draw_t + gate_off + 2 * DH, dz, mask=mask)
        tl.store(draw_t + gate_off + 3 * DH, do, mask=mask)
        di_next, df_next, dz_next, do_next, fg_next = di, df, dz, do, fg


def _launch(S: int, NH: int, B: int, DH: int) -> tuple[tuple[int, int], dict]:
    """Grid and launch parameters. Warps per head-dim tile from `python -m kernels.compile_check` (sm_80/sm_90):
    the fewest that hold R's four gate blocks and the carried state in registers without spilling (4 for 16 x 16,
    8 for 32 x 32, 16 for 64 x 64); one stage (pipelining would stage R through shared memory: 132 instead of 68 KiB
    at 64 x 64). At 128 x 128 the dot operands alone need 264 KiB of shared memory, more than a GPU gives a block."""
    if not 1 <= DH <= 64:
        raise ValueError(f"sLSTM Triton kernel: head dim {DH} is outside 1..64 (use the 'vanilla' or 'cuda' sLSTM "
                         "backend)")
    block_d = max(16, triton.next_power_of_2(DH))
    return (NH, triton.cdiv(B, BLOCK_B)), dict(BLOCK_B=BLOCK_B, BLOCK_D=block_d, num_warps=block_d // 4,
                                               num_stages=1)


def forward_loop(wx: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward recurrence: wx (S, NH, B, 4*DH), r (NH, DH, 4*DH), fp32 contiguous -> (raw (S, NH, B, 4, DH),
    y (S, NH, B, DH), hl (2, S, NH, B, DH): h and log N after each step)."""
    S, NH, B, G = wx.shape
    DH = G // 4
    grid, cfg = _launch(S, NH, B, DH)
    raw = torch.empty(S, NH, B, 4, DH, device=wx.device, dtype=torch.float32)
    y = torch.empty(S, NH, B, DH, device=wx.device, dtype=torch.float32)
    hl = torch.empty(2, S, NH, B, DH, device=wx.device, dtype=torch.float32)
    _fwd_kernel[grid](wx, r, raw, y, hl[0], hl[1], S, NH, B, DH, **cfg)
    return raw, y, hl


def backward_loop(dy: torch.Tensor, r: torch.Tensor, raw: torch.Tensor, y: torch.Tensor,
                  hl: torch.Tensor) -> torch.Tensor:
    """Backward recurrence: d raw (S, NH, B, 4, DH) from dy (S, NH, B, DH) and `forward_loop`'s outputs."""
    S, NH, B, _, DH = raw.shape
    grid, cfg = _launch(S, NH, B, DH)
    draw = torch.empty_like(raw)
    _bwd_kernel[grid](dy.float().contiguous(), r, raw, y, hl[0], hl[1], draw, S, NH, B, DH, **cfg)
    return draw

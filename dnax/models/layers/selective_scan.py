"""Selective scan (Mamba-1 S6) in plain PyTorch with a hand-written backward, for CPU (and any device without
mamba's kernels).

`selective_scan` has the signature and semantics of `mamba_ssm.ops.selective_scan_interface.selective_scan_ref`
(real-valued A only), plus `chunk_size`. The core runs the reference's recurrence itself, per channel d and state n,

    h[t] = a[t] * h[t-1] + B[t] * delta[t] * u[t],   a[t] = exp(delta[t] * A),   y[t] = sum_n C[t] * h[t],

one time step per in-place `addcmul_` over all (batch, D, N) at once, in a time-major layout (L, batch, G, D/G, N)
so every step touches contiguous memory. Step by step it is the same arithmetic as the reference (no log-space
factors, so no overflow and no range limit on delta * A). The sequence is cut into chunks of `chunk_size` steps:
the forward keeps only the state entering each chunk, O(batch * D * N * L / T) memory; the backward walks the chunks
in reverse, recomputes a chunk's a and h from its entry state, runs the adjoint recurrence

    g[t] = C[t] * dy[t] + a[t+1] * g[t+1]     (g[L-1] = C[L-1] * dy[L-1] + d last_state)

backwards in the same way, and contracts chunk-local tensors into the gradients:
dC = sum_d dy h, dB = sum_d g delta u, d(delta u) = sum_n g B, and with w = g * a * h[t-1],
dA = sum_t delta w, d delta += sum_n A w. Peak memory is a few chunk-local (T, batch, D, N) tensors. D, z gating,
delta_bias and softplus are (batch, D, L) elementwise work left to autograd.

Compute dtype: fp32 for fp16/bf16/fp32 inputs, fp64 for fp64 inputs (the reference always computes in fp32).
The output has u's dtype; last_state is in the compute dtype (as the reference's, which is fp32).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from dnax.models.layers.common import triton_runs_on

__all__ = ["selective_scan"]

DEFAULT_CHUNK_SIZE = 32
#: the Triton kernels' chunk: its backward recomputes a chunk's states into a (chunk + 1, B, D, N) scratch buffer
TRITON_CHUNK_SIZE = 64


def _as_groups(X: torch.Tensor, batch: int, dim: int, name: str) -> torch.Tensor | None:
    """Variable B/C as (batch, G, N, L); None for a constant (D, N) one."""
    if X.dim() == 2:
        return None
    if X.dim() == 3:
        X = X.unsqueeze(1)
    if X.dim() != 4 or X.shape[0] != batch:
        raise ValueError(f"{name} must be (D, N), (B, N, L) or (B, G, N, L); got {tuple(X.shape)}")
    if dim % X.shape[1]:
        raise ValueError(f"{name} has {X.shape[1]} groups, which does not divide D={dim}")
    return X


class _Buffers:
    """Work tensors for one chunk, allocated once per call and reused by every chunk: `big` ones (T, b, G, H, N)
    (h has T + 1 rows) with their per-step views (unbound once: indexing a tensor inside the step loop costs more
    than the step's arithmetic), `small` ones (T, b, G, H), and ones(N)."""

    def __init__(self, chunk, like, shape, big, small):
        for name in big:
            buf = like.new_empty((chunk + (name == "h"),) + shape)
            setattr(self, name, buf)
            setattr(self, name + "_steps", buf.unbind(0))
        for name in small:
            setattr(self, name, like.new_empty((chunk,) + shape[:-1]))
        self.ones = like.new_ones(shape[-1])


def _chunk_states(buf, u, delta, A, Bc, h0):
    """Fills buf.a[:T] with the decays exp(delta * A) and buf.h[:T+1] with the states (h[0] = h0, h[i+1] the state
    after step i); returns both. u, delta: (T, b, G, H); A: (G, H, N); Bc: (T, b, G, 1, N) or (G, H, N)."""
    T = u.shape[0]
    a, h = buf.a[:T], buf.h[:T + 1]
    torch.mul(delta.unsqueeze(-1), A, out=a).exp_()
    h[0] = h0
    torch.mul((delta * u).unsqueeze(-1), Bc, out=h[1:])
    a_s, h_s = buf.a_steps, buf.h_steps
    for i in range(T):
        h_s[i + 1].addcmul_(a_s[i], h_s[i])
    return a, h


def _sum_n(x, X, buf, out):
    """out (T, b, G, H), contiguous, = sum_n x * X for x (T, b, G, H, N) and a variable (T, b, G, 1, N) or constant
    (G, H, N) X."""
    T, b, G, H, N = x.shape
    if X.dim() == 5:  # batched (1 x N) @ (N x H): one small matmul per (t, b, g)
        torch.bmm(X.reshape(T * b * G, 1, N), x.reshape(T * b * G, H, N).transpose(1, 2),
                  out=out.view(T * b * G, 1, H))
    else:  # a reduction over a short last dim is slow; a matrix-vector product with ones is not
        torch.mv(torch.mul(x, X, out=buf.tmp[:T]).view(-1, N), buf.ones, out=out.view(-1))
    return out


def _grad_BC(v, x, buf, variable):
    """Gradient of a B/C from v (T, b, G, H) and x (T, b, G, H, N): sum over H per step for a variable one
    ((T, b, G, 1, N)), over steps and batch for a constant one ((G, H, N))."""
    T, b, G, H, N = x.shape
    if variable:
        return torch.bmm(v.reshape(T * b * G, 1, H), x.reshape(T * b * G, H, N)).view(T, b, G, 1, N)
    return torch.mul(x, v.unsqueeze(-1), out=buf.tmp[:T]).sum((0, 1))


class _Transpose(torch.autograd.Function):
    """x (M, K) -> contiguous x.t(), backward likewise. torch copies a 2D transpose in cache blocks; autograd's
    backward of x.t().contiguous() would hand back a transposed view, and elementwise work on that is slow."""

    @staticmethod
    def forward(ctx, x):
        return x.t().contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        return dy.t().contiguous()


def _to_time_major(x):
    """(..., L) -> contiguous (L, ...)."""
    if x.is_contiguous():  # a generic permuted copy of this layout reads with stride L and is ~10x slower
        return _Transpose.apply(x.view(-1, x.shape[-1])).view(x.shape[-1], *x.shape[:-1])
    return x.permute(-1, *range(x.dim() - 1)).contiguous()


def _from_time_major(yt, like):
    """(L, b, G, H) contiguous -> (b, D, L) in the layout of `like` (contiguous) or else as a permuted view."""
    L, b = yt.shape[:2]
    if like.is_contiguous():
        return _Transpose.apply(yt.view(L, -1)).view(b, -1, L)
    return yt.view(L, b, -1).permute(1, 2, 0)


def _scan_forward(u, delta, A, B, C, chunk):
    """The forward in PyTorch: (y (L, b, G, H), last state (b, G, H, N), the state entering each chunk
    (ceil(L / chunk), b, G, H, N))."""
    L, b, G, H = u.shape
    N = A.shape[-1]
    bv, cv = B.dim() == 5, C.dim() == 5
    chunk = min(chunk, L)
    buf = _Buffers(chunk, u, (b, G, H, N), big=("a", "h", "tmp"), small=())
    y = torch.empty_like(u)
    entry = u.new_empty(-(-L // chunk), b, G, H, N)  # the state entering each chunk
    entry[0] = 0
    for c, t0 in enumerate(range(0, L, chunk)):
        t1 = min(t0 + chunk, L)
        _, hs = _chunk_states(buf, u[t0:t1], delta[t0:t1], A, B[t0:t1] if bv else B, entry[c])
        _sum_n(hs[1:], C[t0:t1] if cv else C, buf, y[t0:t1])
        if c + 1 < len(entry):
            entry[c + 1] = hs[-1]
    return y, hs[-1].clone(), entry


def _scan_backward(dy, dlast, u, delta, A, B, C, entry, chunk):
    """The backward in PyTorch: (du, ddelta, dA, dB, dC) from dy (L, b, G, H), d last (b, G, H, N) and the entry
    states."""
    chunk = min(chunk, u.shape[0])
    L, b, G, H = u.shape
    N = A.shape[-1]
    bv, cv = B.dim() == 5, C.dim() == 5
    buf = _Buffers(chunk, u, (b, G, H, N), big=("a", "h", "g", "tmp"), small=("dx", "v"))
    du, ddelta = torch.empty_like(u), torch.empty_like(delta)
    dA = torch.zeros_like(A)
    dB = torch.empty_like(B) if bv else torch.zeros_like(B)
    dC = torch.empty_like(C) if cv else torch.zeros_like(C)
    carry = dlast  # a[t1] * g[t1] from the chunk after (d last_state for the last chunk)
    for c in reversed(range(len(entry))):
        t0 = c * chunk
        t1 = min(t0 + chunk, L)
        T = t1 - t0
        uc, dc, dyc = u[t0:t1], delta[t0:t1], dy[t0:t1]
        Bc = B[t0:t1] if bv else B
        Cc = C[t0:t1] if cv else C
        a, hs = _chunk_states(buf, uc, dc, A, Bc, entry[c])
        g = torch.mul(dyc.unsqueeze(-1), Cc, out=buf.g[:T])
        g[-1] += carry
        a_s, g_s = buf.a_steps, buf.g_steps
        for i in range(T - 2, -1, -1):
            g_s[i].addcmul_(a_s[i + 1], g_s[i + 1])
        carry = a[0] * g[0]
        dCc = _grad_BC(dyc, hs[1:], buf, cv)
        if cv:
            dC[t0:t1] = dCc
        else:
            dC += dCc
        dBc = _grad_BC(dc * uc, g, buf, bv)
        if bv:
            dB[t0:t1] = dBc
        else:
            dB += dBc
        dx = _sum_n(g, Bc, buf, buf.dx[:T])  # d(delta * u)
        w = a.mul_(g).mul_(hs[:-1])  # g[t] * a[t] * h[t-1], in a's memory
        torch.mul(dx, dc, out=du[t0:t1])
        torch.addcmul(_sum_n(w, A, buf, buf.v[:T]), dx, uc, out=ddelta[t0:t1])
        dA += torch.mul(w, dc.unsqueeze(-1), out=buf.tmp[:T]).sum((0, 1))
    return du, ddelta, dA, dB, dC


class _ScanFn(torch.autograd.Function):
    """(u, delta (L, b, G, H), A (G, H, N), B, C (L, b, G, 1, N) or (G, H, N), chunk, loops) -> y (L, b, G, H), last
    state (b, G, H, N); all contiguous. Saves the inputs and the state entering each chunk. `loops` is the
    (forward, backward) pair that does the work: `_scan_forward` / `_scan_backward`, or the Triton kernels'
    `kernels.selective_scan.{scan_forward, scan_backward}` (same signatures and layouts; variable B and C only)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk, loops=(_scan_forward, _scan_backward)):
        y, last, entry = loops[0](u, delta, A, B, C, chunk)
        ctx.save_for_backward(u, delta, A, B, C, entry)
        ctx.chunk, ctx.backward_loop = chunk, loops[1]
        return y, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, entry = ctx.saved_tensors
        grads = ctx.backward_loop(dy.contiguous(), dlast, u, delta, A, B, C, entry, ctx.chunk)
        return (*grads, None, None)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, chunk_size: int = DEFAULT_CHUNK_SIZE, triton: bool = False):
    """Selective scan with the semantics of mamba_ssm's `selective_scan_ref`.

    u, delta: (B, D, L); A: (D, N), real; B, C: (D, N), (B, N, L) or (B, G, N, L) with G dividing D (channel d
    uses group d // (D / G)); D: (D,); z: (B, D, L); delta_bias: (D,).
    out = (scan(u) + u * D) * silu(z), shape (B, D, L) in u's dtype; with return_last_state, (out, last_state) where
    last_state is (B, D, N). chunk_size: steps per chunk, the unit of recomputation in the backward (the forward
    keeps one (B, D, N) state per chunk); any L works (the last chunk may be shorter). Results do not depend on it.
    triton: run the scan's loops as the Triton kernels of `kernels.selective_scan` (variable B and C, fp32; CUDA
    tensors, or CPU under `TRITON_INTERPRET=1`) instead of PyTorch.
    """
    if A.is_complex() or (B.is_complex() or C.is_complex()):
        raise NotImplementedError("dnax selective_scan supports real-valued A, B, C only "
                                  "(complex A is not implemented)")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype_in = u.dtype
    cdt = torch.float64 if dtype_in == torch.float64 else torch.float32
    batch, dim, L = u.shape
    if L < 1:
        raise ValueError(f"u must be (B, D, L) with L >= 1; got {tuple(u.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be (D, N) with D={dim}; got {tuple(A.shape)}")
    N = A.shape[1]
    u_c = u.to(cdt)
    delta = delta.to(cdt)
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(cdt)
    if delta_softplus:
        delta = F.softplus(delta)

    Bv = _as_groups(B, batch, dim, "B")
    Cv = _as_groups(C, batch, dim, "C")
    gb = Bv.shape[1] if Bv is not None else None
    gc = Cv.shape[1] if Cv is not None else None
    if gb is not None and gc is not None and gb != gc:  # different group counts: expand both to one per channel
        Bv = Bv.repeat_interleave(dim // gb, dim=1)
        Cv = Cv.repeat_interleave(dim // gc, dim=1)
        gb = gc = dim
    G = gb or gc or 1
    H = dim // G

    def layout(X, Xv):  # -> (L, b, G, 1, N) for variable, (G, H, N) for constant
        if Xv is None:
            return X.to(cdt).reshape(G, H, N)
        return _to_time_major(Xv.to(cdt)).unsqueeze(3)

    loops = (_scan_forward, _scan_backward)
    if triton:
        if Bv is None or Cv is None or cdt != torch.float32:
            raise ValueError("the Triton selective scan takes variable B and C ((B, G, N, L)) and fp32/bf16/fp16 "
                             "inputs")
        if not triton_runs_on(u):
            raise RuntimeError("the Triton selective scan needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
        from kernels.selective_scan import scan_backward, scan_forward  # triton is imported only when used

        loops = (scan_forward, scan_backward)
        chunk_size = max(chunk_size, TRITON_CHUNK_SIZE)
    u_t, delta_t = (_to_time_major(x).view(L, batch, G, H) for x in (u_c, delta))
    y, last = _ScanFn.apply(u_t, delta_t, A.to(cdt).reshape(G, H, N), layout(B, Bv), layout(C, Cv), chunk_size,
                            loops)
    out = _from_time_major(y, u_c)
    if D is not None:
        out = out + u_c * D.to(cdt)[:, None]
    if z is not None:
        out = out * F.silu(z.to(cdt))
    out = out.to(dtype_in)
    if return_last_state:
        return out, last.reshape(batch, dim, N)
    return out

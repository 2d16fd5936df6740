"""Chunked parallel selective scan (Mamba-1 S6) in plain PyTorch, for CPU (and any device without mamba's kernels).

`selective_scan` has the signature and semantics of `mamba_ssm.ops.selective_scan_interface.selective_scan_ref`
(real-valued A only), plus `chunk_size`. The reference loops over every time step; here the sequence is cut into
chunks of length T and each chunk is computed in parallel, as in Mamba-2's SSD chunked algorithm but with a decay
per channel and state (A is (D, N) instead of a scalar per head):

    dA_cumsum[t, n]  = sum_{r <= t} delta[r] * A[d, n]                  (within the chunk, log space)
    E[t, s, n]       = exp(dA_cumsum[t, n] - dA_cumsum[s, n])  for s <= t, else 0   (always <= 1 for A <= 0)
    y[t]             = sum_n C[t, n] * (sum_{s<=t} E[t, s, n] B[s, n] delta[s] u[s]  +  exp(dA_cumsum[t, n]) h0[n])
    h_end[n]         = exp(dA_cumsum[T-1, n]) h0[n] + sum_s E[T-1, s, n] B[s, n] delta[s] u[s]

with h0 the state carried from the previous chunk (a Python loop over L / T chunks on (batch, D, N) states).
The masked matrix is applied in factored form, exp(S[t]) * cumsum_s(exp(-S[s]) * ...), so a chunk costs O(T N)
rather than O(T^2 N); a chunk whose |dA_cumsum| exceeds a safe range (30 in fp32, 200 in fp64) is halved
recursively (down to single steps, the exact recurrence), so no factor overflows. Peak intermediates are
chunk-local (batch, D, T, N); the whole-sequence (batch, D, L, N) tensor is never formed in forward (autograd
keeps the chunk intermediates for backward, O(batch * D * L * N) in total, like the reference).

Compute dtype: fp32 for fp16/bf16/fp32 inputs, fp64 for fp64 inputs (the reference always computes in fp32).
The output has u's dtype; last_state is in the compute dtype (as the reference's, which is fp32).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["selective_scan"]

DEFAULT_CHUNK_SIZE = 64


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


# Largest |dA_cumsum| allowed inside one chunk before it is split: exp(+-this) must neither overflow nor lose the
# state (fp32 exp overflows at ~88.7; products of cumsum terms stay below ~1e26 * |B delta u|).
_MAX_LOG_RANGE = {torch.float32: 30.0, torch.float64: 200.0}


def _chunk(u, delta, A, Bc, Cc, h0):
    """One chunk in log space. u, delta: (b, G, H, T); A: (G, H, N); Bc, Cc: (b, G, 1, T, N) or (1, G, H, 1, N);
    h0: (b, G, H, N). Returns y (b, G, H, T) and the end state (b, G, H, N).

    states[t] = exp(S[t]) * (h0 + sum_{s<=t} exp(-S[s]) B[s] delta[s] u[s]),  S = cumsum(delta * A) within the chunk,
    i.e. the masked matrix exp(S[t] - S[s]) of the SSD form, factored so that the chunk costs O(T N), not O(T^2 N).
    Where |S| exceeds _MAX_LOG_RANGE somewhere in the chunk, the chunk is halved (down to single steps, which are
    the exact recurrence), so the factors never overflow.
    """
    T = u.shape[-1]
    dA = delta.unsqueeze(-1) * A.unsqueeze(-2)  # (b, G, H, T, N)
    x = (delta * u).unsqueeze(-1)
    if T == 1:
        states = torch.exp(dA) * h0.unsqueeze(-2) + Bc * x
        return (states * Cc).sum(-1), states[..., -1, :]
    S = torch.cumsum(dA, dim=-2)
    if S.detach().abs().max().item() > _MAX_LOG_RANGE[S.dtype]:
        half = T // 2
        B1, B2 = (Bc[..., :half, :], Bc[..., half:, :]) if Bc.shape[-2] > 1 else (Bc, Bc)
        C1, C2 = (Cc[..., :half, :], Cc[..., half:, :]) if Cc.shape[-2] > 1 else (Cc, Cc)
        y1, h = _chunk(u[..., :half], delta[..., :half], A, B1, C1, h0)
        y2, h = _chunk(u[..., half:], delta[..., half:], A, B2, C2, h)
        return torch.cat([y1, y2], dim=-1), h
    states = torch.exp(S) * (h0.unsqueeze(-2) + torch.cumsum(torch.exp(-S) * (Bc * x), dim=-2))
    return (states * Cc).sum(-1), states[..., -1, :]


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Selective scan with the semantics of mamba_ssm's `selective_scan_ref`.

    u, delta: (B, D, L); A: (D, N), real; B, C: (D, N), (B, N, L) or (B, G, N, L) with G dividing D (channel d
    uses group d // (D / G)); D: (D,); z: (B, D, L); delta_bias: (D,).
    out = (scan(u) + u * D) * silu(z), shape (B, D, L) in u's dtype; with return_last_state, (out, last_state) where
    last_state is (B, D, N). chunk_size: the parallel chunk length T (any L works: the last chunk may be shorter).
    """
    if A.is_complex() or (B.is_complex() or C.is_complex()):
        raise NotImplementedError("dnax selective_scan supports real-valued A, B, C only (complex A is not implemented)")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype_in = u.dtype
    cdt = torch.float64 if dtype_in == torch.float64 else torch.float32
    batch, dim, L = u.shape
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

    def layout(X, Xv):  # -> (b, G, 1, L, N) for variable, (1, G, H, 1, N) for constant
        if Xv is None:
            return X.to(cdt).reshape(1, G, H, 1, N)
        return Xv.to(cdt).transpose(-1, -2).unsqueeze(2)

    B5, C5 = layout(B, Bv), layout(C, Cv)
    A3 = A.to(cdt).reshape(G, H, N)
    u4 = u_c.reshape(batch, G, H, L)
    d4 = delta.reshape(batch, G, H, L)

    h = u4.new_zeros(batch, G, H, N)
    ys = []
    for t0 in range(0, L, chunk_size):
        t1 = min(t0 + chunk_size, L)
        Bc = B5[..., t0:t1, :] if Bv is not None else B5
        Cc = C5[..., t0:t1, :] if Cv is not None else C5
        args = (u4[..., t0:t1], d4[..., t0:t1], A3, Bc, Cc, h)
        y, h = _chunk(*args)
        ys.append(y)
    out = torch.cat(ys, dim=-1).reshape(batch, dim, L)
    if D is not None:
        out = out + u_c * D.to(cdt)[:, None]
    if z is not None:
        out = out * F.silu(z.to(cdt))
    out = out.to(dtype_in)
    if return_last_state:
        return out, h.reshape(batch, dim, N)
    return out

"""dnax's selective scan (hand-written backward) against mamba_ssm's `selective_scan_ref` and an fp64 recurrence:
forward, last state and every input gradient, over B/C layouts, groups, ragged chunks, dtypes and memory layouts."""
import importlib.util
import sys
import types

import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("mamba_ssm") is None:
    pytest.skip("mamba_ssm is not installed", allow_module_level=True)
if importlib.util.find_spec("selective_scan_cuda") is None:  # imported unguarded by mamba_ssm; absent on CPU installs
    sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
from mamba_ssm.ops.selective_scan_interface import selective_scan_ref  # noqa: E402

from dnax.models.layers.selective_scan import selective_scan  # noqa: E402

BATCH, DIM, N = 2, 4, 3
# fp32: both sides compute in fp32 (ref step by step, dnax via cumsums in log space)
TOL32 = dict(atol=2e-4, rtol=2e-4)
TOL32_GRAD = dict(atol=1e-3, rtol=1e-3)
# fp64: dnax computes in fp64 and is compared with the same recurrence in fp64 (the ref always casts to fp32)
TOL64 = dict(atol=1e-10, rtol=1e-10)


def ref_fp64(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False):
    """selective_scan_ref's recurrence, kept in fp64."""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    dim, L = u.shape[1], u.shape[2]

    def per_channel(X):  # -> (B, D, N, L) or (D, N)
        if X.dim() == 3:
            return X[:, None].expand(-1, dim, -1, -1)
        if X.dim() == 4:
            return X.repeat_interleave(dim // X.shape[1], dim=1)
        return X

    Bd, Cd = per_channel(B), per_channel(C)
    x = u.new_zeros(u.shape[0], dim, A.shape[1])
    ys = []
    for i in range(L):
        Bi = Bd[..., i] if Bd.dim() == 4 else Bd
        Ci = Cd[..., i] if Cd.dim() == 4 else Cd
        x = torch.exp(delta[:, :, i, None] * A) * x + delta[:, :, i, None] * Bi * u[:, :, i, None]
        ys.append((x * Ci).sum(-1))
    out = torch.stack(ys, dim=2)
    if D is not None:
        out = out + u * D[:, None]
    if z is not None:
        out = out * F.silu(z)
    return (out, x) if return_last_state else out


def make_inputs(L, b_shape, c_shape, with_D, with_z, with_bias, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    shapes = {"const": (DIM, N), "var": (BATCH, N, L), "group": (BATCH, 2, N, L)}
    inputs = dict(
        u=r(BATCH, DIM, L), delta=0.5 * r(BATCH, DIM, L),
        A=-(0.5 + 2 * torch.rand(DIM, N, generator=g, dtype=dtype)),
        B=r(*shapes[b_shape]), C=r(*shapes[c_shape]),
        D=r(DIM) if with_D else None, z=r(BATCH, DIM, L) if with_z else None,
        delta_bias=0.3 * r(DIM) if with_bias else None,
    )
    return {k: (v.requires_grad_() if v is not None else None) for k, v in inputs.items()}


def run(fn, inputs, **kw):
    out = fn(**inputs, **kw)
    out, last = out if isinstance(out, tuple) else (out, None)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
    if last is not None:
        loss = loss + (last.to(out.dtype) ** 2).sum()
    tensors = {k: v for k, v in inputs.items() if v is not None and v.requires_grad}
    grads = torch.autograd.grad(loss, list(tensors.values()))
    return out, last, dict(zip(tensors, grads))


def check(a, b, tol_out, tol_grad):
    (oa, la, ga), (ob, lb, gb) = a, b
    torch.testing.assert_close(oa, ob, **tol_out)
    if la is not None:
        torch.testing.assert_close(la.to(lb.dtype), lb, **tol_out)
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], **tol_grad, msg=lambda m, k=k: f"grad {k}: {m}")


CASES = [  # L, B shape, C shape, D, z, delta_bias, softplus, last_state, chunk
    (37, "var", "var", True, True, True, True, True, 8),
    (37, "var", "var", False, False, False, False, False, 16),
    (20, "const", "var", True, False, False, True, True, 6),
    (20, "var", "const", False, True, True, False, True, 7),
    (21, "group", "group", True, True, False, True, False, 8),
    (19, "group", "var", False, False, True, True, True, 5),
    (16, "const", "const", True, True, True, True, True, 4),
    (9, "var", "var", True, False, False, True, True, 64),  # one ragged chunk shorter than chunk_size
]


@pytest.mark.parametrize("L,bs,cs,wD,wz,wb,sp,last,chunk", CASES)
def test_matches_selective_scan_ref_fp32(L, bs, cs, wD, wz, wb, sp, last, chunk):
    inputs = make_inputs(L, bs, cs, wD, wz, wb, torch.float32)
    kw = dict(delta_softplus=sp, return_last_state=last)
    check(run(selective_scan, inputs, chunk_size=chunk, **kw), run(selective_scan_ref, inputs, **kw),
          TOL32, TOL32_GRAD)


@pytest.mark.parametrize("L,bs,cs,wD,wz,wb,sp,last,chunk", CASES)
def test_matches_recurrence_fp64(L, bs, cs, wD, wz, wb, sp, last, chunk):
    inputs = make_inputs(L, bs, cs, wD, wz, wb, torch.float64)
    kw = dict(delta_softplus=sp, return_last_state=last)
    res = run(selective_scan, inputs, chunk_size=chunk, **kw)
    assert res[0].dtype == torch.float64
    check(res, run(ref_fp64, inputs, **kw), TOL64, TOL64)


def test_large_decays_stay_finite():
    """|delta * A| sums to ~1e3 inside a chunk (a log-space factorisation would overflow); the step recurrence does
    not."""
    inputs = make_inputs(40, "var", "var", True, False, False, torch.float32, seed=1)
    with torch.no_grad():
        inputs["delta"].abs_().mul_(20)
    kw = dict(return_last_state=True)
    res = run(selective_scan, inputs, chunk_size=32, **kw)
    assert torch.isfinite(res[0]).all()
    check(res, run(selective_scan_ref, inputs, **kw), TOL32, TOL32_GRAD)


def test_bf16_inputs_compute_in_fp32():
    inputs = make_inputs(33, "var", "var", True, True, True, torch.float32, seed=2)
    inputs = {k: (v.detach().bfloat16() if k != "delta_bias" and v is not None else v) for k, v in inputs.items()}
    out, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True, chunk_size=8)
    ref, ref_last = selective_scan_ref(**inputs, delta_softplus=True, return_last_state=True)
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)  # both fp32 inside; the output is rounded to bf16
    torch.testing.assert_close(last, ref_last, **TOL32)


def test_bf16_gradients_match_reference():
    """bf16 leaves: the gradients come back in bf16, from fp32 work on both sides."""
    inputs = make_inputs(21, "var", "var", True, True, True, torch.float32, seed=4)
    inputs = {k: v.detach().bfloat16().requires_grad_() for k, v in inputs.items()}
    ours, ref = run(selective_scan, inputs, delta_softplus=True, chunk_size=8), run(selective_scan_ref, inputs,
                                                                                  delta_softplus=True)
    assert all(g.dtype == torch.bfloat16 for g in ours[2].values())
    check(ours, ref, dict(atol=2e-2, rtol=2e-2), dict(atol=5e-2, rtol=2e-2))


@pytest.mark.parametrize("chunk", [1, 3, 10, 11, 1000])
def test_chunk_size_does_not_change_results(chunk):
    """The chunk is only the unit of recomputation: every size (one step, ragged, exactly L, longer than L) gives
    the fp64 recurrence."""
    inputs = make_inputs(10, "var", "group", True, True, True, torch.float64, seed=5)
    kw = dict(delta_softplus=True, return_last_state=True)
    check(run(selective_scan, inputs, chunk_size=chunk, **kw), run(ref_fp64, inputs, **kw), TOL64, TOL64)


def test_strided_inputs_as_the_mamba_layer_passes_them():
    """u, delta, z as (B, D, L) views of (B, L, D) tensors and B, C as views of (B, L, N): same values and grads."""
    inputs = make_inputs(19, "var", "var", True, True, True, torch.float64, seed=6)
    strided = {k: (v.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_() if v.dim() == 3 else v)
               for k, v in inputs.items()}
    assert not strided["u"].is_contiguous()
    kw = dict(delta_softplus=True, return_last_state=True, chunk_size=4)
    check(run(selective_scan, strided, **kw), run(selective_scan, inputs, **kw), TOL64, TOL64)


def test_gradients_of_frozen_inputs_are_skipped():
    """A, B, C without requires_grad: the other gradients are unchanged."""
    inputs = make_inputs(13, "var", "const", True, True, True, torch.float64, seed=7)
    full = run(selective_scan, inputs, delta_softplus=True, chunk_size=4)[2]
    for k in ("A", "B", "C"):
        inputs[k] = inputs[k].detach()
    part = run(selective_scan, inputs, delta_softplus=True, chunk_size=4)[2]
    assert set(part) == {"u", "delta", "D", "z", "delta_bias"}
    for k in part:
        torch.testing.assert_close(part[k], full[k], **TOL64)


def test_backward_keeps_one_state_per_chunk_not_all_states():
    """Tensors saved for backward: the inputs plus one (B, D, N) state per chunk, far below the B * D * L * N of
    every state (what autograd through the recurrence keeps)."""
    b, dim, n, L, chunk = 2, 8, 16, 256, 32
    g = torch.Generator().manual_seed(8)
    inputs = dict(u=torch.randn(b, dim, L, generator=g), delta=torch.randn(b, dim, L, generator=g),
                  A=-torch.rand(dim, n, generator=g), B=torch.randn(b, n, L, generator=g),
                  C=torch.randn(b, n, L, generator=g), D=torch.randn(dim, generator=g),
                  z=torch.randn(b, dim, L, generator=g), delta_bias=torch.randn(dim, generator=g))
    inputs = {k: v.requires_grad_() for k, v in inputs.items()}
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        selective_scan(**inputs, delta_softplus=True, chunk_size=chunk)
    input_numel = sum(v.numel() for v in inputs.values())
    assert sum(saved) <= 3 * input_numel + b * dim * n * (L // chunk)
    assert max(saved) <= max(v.numel() for v in inputs.values())  # no (B, D, L, N) tensor
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        selective_scan_ref(**inputs, delta_softplus=True)
    assert max(saved) >= b * dim * n * L  # the reference keeps every state: the test can tell them apart


def test_gradcheck_fp64():
    inputs = make_inputs(7, "var", "group", True, True, True, torch.float64, seed=3)
    names = [k for k, v in inputs.items() if v is not None]
    fn = lambda *xs: selective_scan(**dict(zip(names, xs)), delta_softplus=True, chunk_size=3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, [inputs[k] for k in names])


def test_complex_A_is_rejected():
    inputs = make_inputs(8, "var", "var", False, False, False, torch.float32)
    with pytest.raises(NotImplementedError, match="real-valued"):
        selective_scan(inputs["u"], inputs["delta"], inputs["A"].detach().to(torch.complex64), inputs["B"],
                       inputs["C"])

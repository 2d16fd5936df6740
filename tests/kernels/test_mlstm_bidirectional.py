"""The native bidirectional mLSTM kernel against its quadratic reference: outputs and all input gradients."""
import math

import pytest
import torch

import kernels
from kernels.mlstm_bidirectional import mlstm_bidirectional, mlstm_bidirectional_ref

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# (B, NH, S, DH): lengths that are and are not multiples of the tile (16..64), head dims 16..64 on CPU
SHAPES_CPU = [(1, 2, 37, 16), (2, 1, 64, 32), (1, 1, 5, 16), (1, 1, 70, 24)]
SHAPES_GPU = [(2, 4, 1000, 64), (1, 2, 4097, 128), (1, 2, 300, 256)]
SHAPES = SHAPES_GPU if DEVICE == "cuda" else SHAPES_CPU
TOL = {torch.float32: dict(atol=2e-4, rtol=2e-4), torch.float64: dict(atol=1e-9, rtol=1e-9),
       torch.bfloat16: dict(atol=3e-2, rtol=3e-2), torch.float16: dict(atol=1e-2, rtol=1e-2)}


def _inputs(shape, dtype, seed=0, gate_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    B, NH, S, DH = shape
    q, k, v = (torch.randn(B, NH, S, DH, generator=g) for _ in range(3))
    i = torch.randn(B, NH, S, generator=g) * gate_scale
    f = torch.randn(B, NH, S, generator=g) * gate_scale + 2.0
    return [t.to(DEVICE, dtype).requires_grad_() for t in (q, k, v, i, f)]


def _run(fn, inputs, dh):
    h = fn(*inputs)
    grads = torch.autograd.grad(h, inputs, dh)
    return h, grads


def test_kernels_package_is_ours():
    assert kernels.__file__.endswith("kernels/__init__.py") and "dnax" in kernels.__doc__


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_kernel_equals_reference_outputs_and_gradients(shape, dtype):
    """Kernel vs the quadratic reference in fp64 from the same (rounded) inputs (fp16 runs the tensor-core path
    in Triton's CPU interpreter too; bf16 runs fp32 dot products there). The allowed error is the dtype's
    tolerance, or 4x the error of the fp32 reference itself where that is larger: at long random sequences some
    rows have a normaliser near cancellation and even the fp32 reference is off by ~1 there (seen on an H100 at
    S = 1000 and 4097), which no fp32 computation can beat."""
    inputs = _inputs(shape, dtype)
    dh = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(DEVICE, dtype)
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    h_ref, g_ref = _run(mlstm_bidirectional_ref, ref_inputs, dh.double())
    f32_inputs = [t.detach().float().requires_grad_() for t in inputs]
    h_32, g_32 = _run(mlstm_bidirectional_ref, f32_inputs, dh.float())
    h, g = _run(mlstm_bidirectional, inputs, dh)
    assert h.dtype == dtype and all(a.dtype == dtype for a in g)
    tol = TOL[dtype]
    err = (h.double() - h_ref).abs()
    allowed = torch.maximum(tol["atol"] + tol["rtol"] * h_ref.abs(), 4 * (h_32.double() - h_ref).abs().amax(-1, True))
    assert (err <= allowed).all(), f"h: max error {err.max().item():.2e}, {(err > allowed).sum().item()} entries over"
    for name, a, b, c in zip("qkvif", g, g_ref, g_32):
        scale = b.abs().max().item() or 1.0  # gradients span magnitudes: compare relative to their largest entry
        err = (a.double() - b).abs().max().item() / scale
        limit = max(tol["rtol"] * 10, 4 * (c.double() - b).abs().max().item() / scale)
        assert err < limit, f"d{name}: max error {err:.2e} relative to max |grad| {scale:.2e} (limit {limit:.2e})"


def test_stabiliser_gradient_is_included():
    """With large input gates (exp(-m) << eps) and small q.k, the normaliser is ~ eps and h depends on the row
    max m through eps: d h / d m = -h eps / n is then a large part of the gradients of i and f."""
    shape = (1, 1, 33, 16)
    inputs = _inputs(shape, torch.float32, seed=3)
    with torch.no_grad():
        inputs[0].mul_(1e-4)  # |den| ~ 1e-5
        inputs[3].add_(14.0)  # exp(-m) ~ 1e-7
    ref_inputs = [t.detach().double().requires_grad_() for t in inputs]
    dh = torch.randn(shape, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    _, g_ref = _run(mlstm_bidirectional_ref, ref_inputs, dh.double())
    _, g = _run(mlstm_bidirectional, inputs, dh)
    for name, a, b in zip("qkvif", g, g_ref):
        err = (a.double() - b).abs().max().item() / (b.abs().max().item() or 1.0)
        assert err < 1e-3, f"d{name}: {err:.2e}"


def test_matches_the_model_backends_reference_form():
    from dnax.models.layers.mlstm import mlstm_bidirectional_parallel

    inputs = [t.detach() for t in _inputs((1, 2, 21, 16), torch.float32, seed=5)]
    torch.testing.assert_close(mlstm_bidirectional(*inputs), mlstm_bidirectional_parallel(*inputs),
                               atol=1e-5, rtol=1e-5)


def test_model_backend_wrapper_runs_the_kernel():
    from dnax.models.layers.mlstm import mlstm_backend_fn, mlstm_bidirectional_chunkwise, mlstm_bidirectional_kernel

    inputs = [t.detach() for t in _inputs((2, 1, 19, 16), torch.float32, seed=6)]
    torch.testing.assert_close(mlstm_bidirectional_kernel(*inputs), mlstm_bidirectional_chunkwise(*inputs),
                               atol=1e-5, rtol=1e-5)
    assert mlstm_backend_fn("kernel", True, torch.device("cuda")) is mlstm_bidirectional_kernel
    assert mlstm_backend_fn("auto", True, torch.device("cuda")) is mlstm_bidirectional_chunkwise
    assert mlstm_backend_fn("parallel", True, torch.device("cuda")) is not mlstm_bidirectional_kernel


def test_head_dim_above_256_is_refused():
    q = torch.zeros(1, 1, 4, 272, device=DEVICE)
    i = torch.zeros(1, 1, 4, device=DEVICE)
    with pytest.raises(ValueError, match="head dim 272"):
        mlstm_bidirectional(q, q, q, i, i)


def test_reference_is_non_causal_and_normalised():
    """Sanity of the reference itself: every position sees the future; with equal keys and values h = v."""
    q, k, v, i, f = (t.detach().double() for t in _inputs((1, 1, 9, 16), torch.float32))
    h = mlstm_bidirectional_ref(q, k, v, i, f)
    v2 = v.clone()
    v2[..., -1, :] += 1.0
    assert (mlstm_bidirectional_ref(q, k, v2, i, f) - h)[..., 0, :].abs().max() > 0
    assert math.isfinite(h.abs().max().item())


def test_decays_are_exact_to_fp32_late_in_long_sequences():
    """b_s - b_t and x_s - x_t as the kernel forms them from the (hi, lo) parts of `cumulative_gates`, late in a 20k
    sequence where the prefix sums are in the thousands: within 2 fp32 ulps of the fp64 sum (their own size), and
    at least 10x closer than the difference of fp32 prefix sums (off by ~1e-4 there)."""
    from kernels.mlstm_bidirectional import cumulative_gates

    f = torch.randn(1, 20000, generator=torch.Generator().manual_seed(0)) * 3 + 2
    lf = torch.nn.functional.logsigmoid(f.double())[0]
    (b_hi, b_lo), (x_hi, x_lo) = cumulative_gates(f)
    assert b_hi.dtype == b_lo.dtype == x_hi.dtype == x_lo.dtype == torch.float32
    b32 = torch.nn.functional.logsigmoid(f).cumsum(-1)
    for t, s in [(19000, 19010), (19990, 19999), (18000, 18500), (7, 19999)]:
        ulp = torch.finfo(torch.float32).eps * max(1.0, abs(lf[t + 1:s + 1].sum().item()))
        cases = [((b_hi[0, s] - b_hi[0, t]) + (b_lo[0, s] - b_lo[0, t]), lf[t + 1:s + 1].sum()),
                 ((x_hi[0, s] - x_hi[0, t]) + (x_lo[0, s] - x_lo[0, t]), lf[t:s].sum())]
        for kernel_form, exact in cases:
            assert abs(kernel_form.item() - exact.item()) <= 2 * ulp, (t, s, kernel_form.item(), exact.item())
        if s - t < 100:
            fp32_form = (b32[0, s] - b32[0, t]).item()
            assert 10 * abs(cases[0][0].item() - cases[0][1].item()) < abs(fp32_form - cases[0][1].item()), (t, s)


def _cancelling_inputs(dtype, shape=(1, 2, 256, 16)):
    """Random inputs with forget gates around -1 (prefix sums of hundreds within 256 steps) and rows whose
    normaliser nearly cancels."""
    return [t.detach() for t in _inputs(shape, dtype, gate_scale=3.0)[:4]] + \
        [(torch.randn(shape[:3], generator=torch.Generator().manual_seed(9)) * 3 - 1).to(DEVICE, dtype)]


def test_kernel_does_not_inherit_the_fp32_prefix_sum_error():
    """fp32: the kernel's outputs are 10x closer to fp64 than the fp32 reference's, whose log D differences of fp32
    prefix sums are off by ~1e-5 (an H100 put the kernel off by ~1 at S = 1000 when it used them too; on CPU the
    two shared the same rounding, which hid it)."""
    inputs = _cancelling_inputs(torch.float32)
    h64 = mlstm_bidirectional_ref(*[t.double() for t in inputs])
    err_ref32 = (mlstm_bidirectional_ref(*inputs).double() - h64).abs().max().item()
    err = (mlstm_bidirectional(*inputs).double() - h64).abs().max().item()
    assert err_ref32 > 1e-3 and 10 * err < err_ref32, (err, err_ref32)


def test_tensor_core_path_keeps_c_to_16_bits():
    """fp16 inputs (tensor-core dot products; Triton's interpreter runs them right, unlike bf16): every output within
    4x the fp32 reference's row error plus one fp16 ulp of the stored output. C rounded once to fp16 before C @ V
    misses this by 30-50x in cancelling rows."""
    inputs = _cancelling_inputs(torch.float16)
    h64 = mlstm_bidirectional_ref(*[t.double() for t in inputs])
    h32 = mlstm_bidirectional_ref(*[t.float() for t in inputs]).double()
    h = mlstm_bidirectional(*inputs)
    assert h.dtype == torch.float16
    err = (h.double() - h64).abs()
    allowed = 4 * (h32 - h64).abs().amax(-1, True) + 2 ** -10 * h64.abs()
    assert (err <= allowed).all(), f"max error {err.max().item():.2e}, worst {(err / allowed).max().item():.1f}x"

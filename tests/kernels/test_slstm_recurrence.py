"""The Triton sLSTM time loops (`slstm_recurrence(..., triton=True)`) against the reference's step-by-step
recurrence in fp64 (outputs and the gradients of the gate pre-activations and of the recurrent kernel), and the
layer's `triton` backend against `vanilla`."""
import pytest
import torch

from dnax.models.layers.slstm import SLSTMLayer, slstm_recurrence, slstm_recurrence_ref
from kernels.slstm_recurrence import forward_loop

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# (S, NH, B, DH): batches below, at and above the 16-sequence tile, head dims that are not powers of two, S = 1
SHAPES_CPU = [(9, 2, 3, 16), (6, 1, 17, 24), (1, 1, 2, 16), (5, 2, 2, 32)]
SHAPES_GPU = [(1000, 4, 32, 32), (257, 2, 5, 64), (64, 1, 40, 48)]
SHAPES = SHAPES_GPU if DEVICE == "cuda" else SHAPES_CPU


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    S, NH, B, DH = shape
    wx = torch.randn(S, NH, B, 4 * DH, generator=g, dtype=torch.float64) * 2.0
    r = torch.randn(NH, DH, 4 * DH, generator=g, dtype=torch.float64) * DH**-0.5
    dy = torch.randn(S, NH, B, DH, generator=g, dtype=torch.float64)
    return wx, r, dy


def _run(fn, wx, r, dy, dtype):
    wx, r = (t.to(DEVICE, dtype).detach().requires_grad_() for t in (wx, r))
    y = fn(wx, r)
    y.backward(dy.to(DEVICE, dtype))
    return [t.double().cpu() for t in (y, wx.grad, r.grad)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_triton_recurrence_equals_reference(shape):
    wx, r, dy = _inputs(shape)
    exact = _run(slstm_recurrence_ref, wx, r, dy, torch.float64)
    triton_fp32 = _run(lambda a, b: slstm_recurrence(a, b, triton=True), wx, r, dy, torch.float32)
    pytorch_fp32 = _run(slstm_recurrence, wx, r, dy, torch.float32)
    for name, ref, got, fp32 in zip(("y", "d wx", "d r"), exact, triton_fp32, pytorch_fp32):
        scale = ref.abs().max().item()
        # fp32 rounding compounds over the steps: the bound is the PyTorch fp32 form's own error, or 1e-5 relative
        bound = max(1e-5 * scale, 4 * (fp32 - ref).abs().max().item())
        err = (got - ref).abs().max().item()
        assert err <= bound, f"{name}: max |triton - fp64 reference| {err:.3g} > {bound:.3g} (scale {scale:.3g})"


def _layer_run(backend, dtype, state, x, dy):
    layer = SLSTMLayer(embedding_dim=64, num_heads=4, backend=backend).to(DEVICE, dtype)
    layer.load_state_dict(state)
    y = layer(x.to(DEVICE, dtype))
    y.backward(dy.to(DEVICE, dtype))
    return {"y": y.detach().double().cpu(), **{n: p.grad.double().cpu() for n, p in layer.named_parameters()}}


def test_triton_backend_of_the_layer_equals_vanilla():
    """Outputs and every parameter gradient of an SLSTMLayer: `triton` in fp32 is as close to `vanilla` in fp64 as
    `vanilla` in fp32 is (or within 1e-6 of the scale)."""
    g = torch.Generator().manual_seed(0)
    state = SLSTMLayer(embedding_dim=64, num_heads=4).state_dict()
    state["slstm_cell._recurrent_kernel_"] = torch.randn(4, 16, 64, generator=g) * 0.2  # a non-zero recurrence
    x, dy = torch.randn(3, 11, 64, generator=g), torch.randn(3, 11, 64, generator=g)
    exact = _layer_run("vanilla", torch.float64, state, x, dy)
    vanilla, triton = (_layer_run(b, torch.float32, state, x, dy) for b in ("vanilla", "triton"))
    for name, ref in exact.items():
        bound = max(1e-6 * ref.abs().max().item(), 4 * (vanilla[name] - ref).abs().max().item())
        err = (triton[name] - ref).abs().max().item()
        assert err <= bound, f"{name}: max |triton - fp64| {err:.3g} > {bound:.3g}"


def test_triton_needs_cuda_or_the_interpreter_and_triton_layers_run_pytorch_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    wx, r = torch.randn(4, 2, 1, 64), torch.randn(2, 16, 64)
    with pytest.raises(RuntimeError, match="Triton sLSTM recurrence needs CUDA tensors"):
        slstm_recurrence(wx, r, triton=True)
    # a layer trained with backend "triton" still evaluates on CPU: the PyTorch loops, same result as vanilla
    torch.manual_seed(0)
    layers = [SLSTMLayer(embedding_dim=32, num_heads=2, backend=b) for b in ("triton", "vanilla")]
    layers[1].load_state_dict(layers[0].state_dict())
    x = torch.randn(1, 4, 32)
    assert torch.equal(layers[0](x), layers[1](x))


def test_head_dim_above_64_is_a_clear_error():
    with pytest.raises(ValueError, match="head dim 128 is outside 1..64"):
        forward_loop(torch.zeros(2, 1, 1, 4 * 128, device=DEVICE), torch.zeros(1, 128, 4 * 128, device=DEVICE))

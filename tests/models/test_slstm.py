"""sLSTM layer and gated FFN: against the xlstm package's vanilla sLSTM (weights converted from the CUDA layout),
the recurrence against its per-step reference, init, causality, the RCPS head-flip quirk, gradients, backends."""
from __future__ import annotations

import pytest
import torch

from dnax.models.layers.slstm import (GatedFeedForward, SLSTMCell, SLSTMLayer, _SLSTMRecurrence,
                                      bias_cuda_to_vanilla, bias_vanilla_to_cuda, proj_up_dim,
                                      recurrent_kernel_cuda_to_vanilla, recurrent_kernel_vanilla_to_cuda,
                                      slstm_recurrence, slstm_recurrence_ref)

xlstm_layer = pytest.importorskip("xlstm.blocks.slstm.layer")
from xlstm.blocks.slstm.cell import sLSTMCell_vanilla, sLSTMCellConfig  # noqa: E402
from xlstm.components.feedforward import FeedForwardConfig  # noqa: E402
from xlstm.components.feedforward import GatedFeedForward as RefFFN  # noqa: E402


def _perturb_(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))


def _to_vanilla_state_dict(layer: SLSTMLayer) -> dict[str, torch.Tensor]:
    sd = dict(layer.state_dict())
    sd["slstm_cell._recurrent_kernel_"] = recurrent_kernel_cuda_to_vanilla(sd["slstm_cell._recurrent_kernel_"])
    sd["slstm_cell._bias_"] = bias_cuda_to_vanilla(sd["slstm_cell._bias_"], layer.num_heads)
    return sd


def _reference_layer(D, NH, K, block_idx=0, num_blocks=1):
    cfg = xlstm_layer.sLSTMLayerConfig(embedding_dim=D, num_heads=NH, conv1d_kernel_size=K, backend="vanilla",
                                       _block_idx=block_idx, _num_blocks=num_blocks)
    return xlstm_layer.sLSTMLayer(cfg)


def test_layout_converters_match_xlstm():
    NH, DH = 4, 8
    cell = sLSTMCell_vanilla(sLSTMCellConfig(hidden_size=NH * DH, num_heads=NH, backend="vanilla"))
    ext_r = torch.randn(NH, DH, 4, DH)  # xlstm "external" layout; the CUDA internal one is its reshape
    ext_b = torch.randn(NH, 4, DH)
    r_cuda, b_cuda = ext_r.reshape(NH, DH, 4 * DH), ext_b.reshape(-1)
    assert torch.equal(recurrent_kernel_cuda_to_vanilla(r_cuda), cell._recurrent_kernel_ext2int(ext_r))
    assert torch.equal(bias_cuda_to_vanilla(b_cuda, NH), cell._bias_ext2int(ext_b))
    assert torch.equal(recurrent_kernel_vanilla_to_cuda(recurrent_kernel_cuda_to_vanilla(r_cuda)), r_cuda)
    assert torch.equal(bias_vanilla_to_cuda(bias_cuda_to_vanilla(b_cuda, NH), NH), b_cuda)


def test_parameter_names_and_shapes_are_the_reference_checkpoint_layout():
    layer = SLSTMLayer(64, 4, 4, True, 0.0)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        "conv1d.conv.weight": (64, 1, 4), "conv1d.conv.bias": (64,),
        "fgate.weight": (4, 16, 16), "igate.weight": (4, 16, 16), "zgate.weight": (4, 16, 16),
        "ogate.weight": (4, 16, 16), "slstm_cell._recurrent_kernel_": (4, 16, 64), "slstm_cell._bias_": (256,),
        "group_norm.weight": (64,),
    }
    ffn = GatedFeedForward(64, 1.3, True, 64, 0.0)
    assert {k: tuple(v.shape) for k, v in ffn.state_dict().items()} == {
        "proj_up.weight": (256, 64), "proj_down.weight": (64, 128)}


@pytest.mark.parametrize("block_idx,num_blocks", [(0, 1), (1, 4), (3, 4)])
def test_seeded_init_matches_xlstm_block(block_idx, num_blocks):
    """Same seed -> the same weights as xlstm's sLSTMBlock (construction then reset_parameters, as the reference)."""
    from xlstm import sLSTMBlock, sLSTMBlockConfig

    D = 64
    torch.manual_seed(0)
    ref = sLSTMBlock(sLSTMBlockConfig(
        slstm=xlstm_layer.sLSTMLayerConfig(embedding_dim=D, num_heads=4, conv1d_kernel_size=4, backend="vanilla"),
        feedforward=FeedForwardConfig(proj_factor=1.3, embedding_dim=D), _block_idx=block_idx,
        _num_blocks=num_blocks))
    torch.manual_seed(0)
    layer = SLSTMLayer(D, 4, 4, True, 0.0, block_idx=block_idx, num_blocks=num_blocks)
    ffn = GatedFeedForward(D, 1.3, True, 64, 0.0, num_blocks=num_blocks)
    layer.reset_parameters()
    ffn.reset_parameters()
    ref_sd = ref.state_dict()
    ours = {**{f"xlstm.{k}": v for k, v in _to_vanilla_state_dict(layer).items()},
            **{f"ffn.{k}": v for k, v in ffn.state_dict().items()}}
    for key, value in ours.items():
        torch.testing.assert_close(value, ref_sd[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize("D,NH,K,S", [(32, 4, 4, 37), (24, 1, 0, 20), (16, 2, 3, 1)])
def test_layer_matches_xlstm_vanilla_forward_and_backward(D, NH, K, S):
    torch.manual_seed(0)
    ours = SLSTMLayer(D, NH, K, True, 0.0, block_idx=1, num_blocks=3, backend="vanilla")
    _perturb_(ours)
    ref = _reference_layer(D, NH, K, 1, 3)
    ref.load_state_dict(_to_vanilla_state_dict(ours))
    x = torch.randn(2, S, D, requires_grad=True)
    y_ref, y = ref(x), ours(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    names = [n for n, _ in ours.named_parameters()]
    grads = torch.autograd.grad(y, [x, *ours.parameters()], g)
    ref_params = dict(ref.named_parameters())
    ref_grads = dict(zip(["x", *names], torch.autograd.grad(y_ref, [x, *(ref_params[n] for n in names)], g)))
    ref_grads["slstm_cell._recurrent_kernel_"] = recurrent_kernel_vanilla_to_cuda(
        ref_grads["slstm_cell._recurrent_kernel_"])
    ref_grads["slstm_cell._bias_"] = bias_vanilla_to_cuda(ref_grads["slstm_cell._bias_"], NH)
    for name, grad in zip(["x", *names], grads):
        ref_grad = ref_grads[name]
        scale = max(1.0, ref_grad.abs().max().item())
        torch.testing.assert_close(grad, ref_grad, rtol=0, atol=2e-5 * scale, msg=name)


def _recurrence_inputs(S, NH, B, DH, dtype=torch.float64, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    wx = (scale * torch.randn(S, NH, B, 4 * DH, generator=g, dtype=dtype)).requires_grad_()
    r = (0.5 * torch.randn(NH, DH, 4 * DH, generator=g, dtype=dtype)).requires_grad_()
    return wx, r


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_recurrence_matches_per_step_reference(scale):
    """Forward and hand-written backward against the reference step function under autograd (float64)."""
    wx, r = _recurrence_inputs(41, 3, 2, 5, scale=scale)
    y_ref, y = slstm_recurrence_ref(wx, r), _SLSTMRecurrence.apply(wx, r)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, (wx, r), g), torch.autograd.grad(y_ref, (wx, r), g)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_recurrence_gradcheck():
    wx, r = _recurrence_inputs(6, 2, 2, 3)
    assert torch.autograd.gradcheck(_SLSTMRecurrence.apply, (wx, r))


def test_recurrence_fp32_and_autocast():
    wx, r = _recurrence_inputs(30, 2, 3, 4, dtype=torch.float32)
    y = slstm_recurrence(wx, r)
    torch.testing.assert_close(y, slstm_recurrence_ref(wx, r), rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16 = slstm_recurrence(wx.bfloat16(), r)
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16.float()).all()


def test_first_step_stabiliser_survives_extreme_gates():
    """Very negative input gates with a saturated forget gate: the reference's m = i_raw first step keeps n > 0."""
    S, NH, B, DH = 8, 1, 1, 2
    wx = torch.zeros(S, NH, B, 4 * DH)
    wx[:, :, :, :DH] = -500.0          # i
    wx[:, :, :, DH:2 * DH] = 50.0      # f
    wx[:, :, :, 2 * DH:3 * DH] = 1.0   # z
    r = torch.zeros(NH, DH, 4 * DH)
    y, y_ref = slstm_recurrence(wx, r), slstm_recurrence_ref(wx, r)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, y_ref)


def test_causal():
    torch.manual_seed(0)
    layer = SLSTMLayer(16, 2, 4, True, 0.0, backend="vanilla")
    _perturb_(layer)
    x = torch.randn(2, 30, 16)
    t = 17
    x2 = x.clone()
    x2[:, t] += 1.0
    with torch.no_grad():
        y, y2 = layer(x), layer(x2)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert (y[:, t:] - y2[:, t:]).abs().amax(dim=(0, 2)).min() > 0


def test_rc_branch_flips_heads_before_the_group_norm():
    """rc_branch=True == the plain layer with head-flipped norm weights, output heads flipped (not flipped back)."""
    torch.manual_seed(0)
    NH, DH = 4, 4
    a = SLSTMLayer(NH * DH, NH, 4, True, 0.0)
    _perturb_(a)
    b = SLSTMLayer(NH * DH, NH, 4, True, 0.0)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.group_norm.weight.copy_(a.group_norm.weight.view(NH, DH).flip(0).reshape(-1))
    x = torch.randn(2, 11, NH * DH)
    with torch.no_grad():
        y_rc = a(x, rc_branch=True)
        expected = b(x).view(2, 11, NH, DH).flip(2).reshape(2, 11, NH * DH)
    torch.testing.assert_close(y_rc, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(y_rc, a(x))
    off = SLSTMLayer(NH * DH, NH, 4, True, 0.0, rc_head_flip=False)
    off.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert torch.equal(off(x, rc_branch=True), off(x))


def test_gradients_finite_on_long_sequences():
    torch.manual_seed(0)
    layer = SLSTMLayer(32, 4, 4, True, 0.0, backend="vanilla")
    _perturb_(layer, scale=1.0)
    x = (5 * torch.randn(2, 512, 32)).requires_grad_()
    layer(x).square().mean().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_ffn_matches_xlstm():
    torch.manual_seed(0)
    ours = GatedFeedForward(64, 1.3, True, 64, 0.0, num_blocks=2)
    ref = RefFFN(FeedForwardConfig(proj_factor=1.3, embedding_dim=64, _num_blocks=2))
    assert ours.up_dim == ref.config._proj_up_dim == 128
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, 64)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)
    assert proj_up_dim(128, 1.3, True, 64) == 192 and proj_up_dim(128, 1.3, False, 64) == 128


def test_position_embeddings_option():
    layer = SLSTMLayer(16, 2, 4, True, 0.0, position_embeddings=True, context_length=8)
    assert "pos_emb.scale" in layer.state_dict()
    assert layer(torch.randn(1, 8, 16)).shape == (1, 8, 16)
    with pytest.raises(ValueError):
        layer(torch.randn(1, 9, 16))


def test_backend_selection_on_cpu():
    x = torch.randn(1, 5, 2, 4, 3)
    auto = SLSTMCell(6, 2, backend="auto")
    assert auto(x).shape == (1, 2, 5, 3)  # auto -> vanilla on CPU
    with pytest.raises(RuntimeError, match="CUDA"):
        SLSTMCell(6, 2, backend="cuda")(x)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure path of the CUDA JIT build")
def test_cuda_kernel_build_failure_is_a_clear_error():
    from dnax.models.layers.slstm import _cuda_function

    for _ in range(2):  # the failure is remembered, not rebuilt
        with pytest.raises(RuntimeError, match="sLSTM CUDA kernel unavailable"):
            _cuda_function(8, 2, "float32")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (JIT-builds the xlstm sLSTM kernel)")
@pytest.mark.parametrize("cuda_dtype,tol", [("float32", 1e-4), ("bfloat16", 5e-2)])
def test_cuda_backend_matches_vanilla(cuda_dtype, tol):
    torch.manual_seed(0)
    van = SLSTMLayer(64, 4, 4, True, 0.0, backend="vanilla").cuda()
    _perturb_(van, scale=0.1)
    cud = SLSTMLayer(64, 4, 4, True, 0.0, backend="cuda", cuda_dtype=cuda_dtype).cuda()
    cud.load_state_dict(van.state_dict())
    x = torch.randn(4, 64, 64, device="cuda", requires_grad=True)
    y_v, y_c = van(x), cud(x)
    torch.testing.assert_close(y_c.float(), y_v, rtol=tol, atol=tol)
    g = torch.randn_like(y_v)
    gv = torch.autograd.grad(y_v, [x, *van.parameters()], g)
    gc = torch.autograd.grad(y_c, [x, *cud.parameters()], g)
    for a, b in zip(gc, gv):
        torch.testing.assert_close(a.float(), b, rtol=10 * tol, atol=10 * tol * max(1.0, b.abs().max().item()))


class _CudaLike:
    """Stands in for a CUDA tensor in the backend decision (CI has no GPU)."""
    is_cuda = True


def test_auto_picks_the_triton_kernels_on_cuda_where_they_import(monkeypatch):
    """'auto' on CUDA: Triton (2.6x the xlstm CUDA kernel's train step on an H100) for head dims <= 64; the CUDA
    kernel for larger heads or where triton / kernels/ do not import; CPU tensors: the PyTorch loops."""
    import dnax.models.layers.slstm as slstm

    built = []
    monkeypatch.setattr(slstm, "_cuda_function", lambda *a: built.append(a) or "cuda-fn")
    small, large = SLSTMCell(256, 4, backend="auto"), SLSTMCell(512, 4, backend="auto")  # head dims 64, 128
    assert small._auto_triton(_CudaLike()) and small._cuda_fn(_CudaLike()) is None and not built
    assert not large._auto_triton(_CudaLike()) and large._cuda_fn(_CudaLike()) == "cuda-fn"
    assert not small._auto_triton(torch.zeros(1)) and small._cuda_fn(torch.zeros(1)) is None
    assert not SLSTMCell(256, 4, backend="cuda")._auto_triton(_CudaLike())
    monkeypatch.setattr(slstm, "auto_picks_triton", lambda x: False)  # triton or kernels/ missing
    assert small._cuda_fn(_CudaLike()) == "cuda-fn"

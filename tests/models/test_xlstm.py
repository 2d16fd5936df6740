"""Properties of the xLSTM backbone and its mLSTM backends (small shapes, CPU)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dnax.models.backbones.xlstm import XLSTMLM
from dnax.models.layers.common import (
    CausalConv1d,
    LinearHeadwiseExpand,
    MultiHeadLayerNorm,
    apply_rope,
    depthwise_conv1d_ref,
    headwise_block_weights,
    rope_cos_sin,
)
from dnax.models.layers.mlstm import (
    MLSTMLayer,
    mlstm_bidirectional_chunkwise,
    mlstm_bidirectional_parallel,
    mlstm_chunkwise,
    mlstm_kernel,
    mlstm_parallel,
)
from dnax.tokenizer import COMPLEMENT_MAP

CAUSAL_BACKENDS = ["parallel", "chunkwise", "kernel"]
SMALL = dict(d_model=32, n_layer=2, m_num_heads=2, max_length=64, m_chunk_size=16)


def _model(**kw) -> XLSTMLM:
    torch.manual_seed(0)
    model = XLSTMLM(**{**SMALL, **kw}).eval()
    with torch.no_grad():  # perturb everything: the zero-initialised gate weights would hide the gate paths
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _ids(B=2, L=37, seed=1):
    return torch.randint(7, 12, (B, L), generator=torch.Generator().manual_seed(seed))


def _perturbed(ids, t):
    out = ids.clone()
    out[:, t] = torch.where(out[:, t] == 7, 8, 7)
    return out


def _cell_inputs(S, B=2, NH=2, DH=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, NH, S, DH, generator=g, dtype=dtype) for _ in range(3))
    i = 2 * torch.randn(B, NH, S, generator=g, dtype=dtype)
    f = torch.randn(B, NH, S, generator=g, dtype=dtype) + 2
    return q, k, v, i, f


# --------------------------------------------------------------------------------------------- causality


@pytest.mark.parametrize("backend", CAUSAL_BACKENDS)
def test_causal_model_does_not_see_the_future(backend):
    model, ids, t = _model(m_backend=backend), _ids(), 20
    with torch.no_grad():
        a, b = model(ids), model(_perturbed(ids, t))
    assert torch.equal(a[:, :t], b[:, :t])  # bit for bit, not just within rounding
    assert (a[:, t:] - b[:, t:]).abs().max() > 1e-4


@pytest.mark.parametrize("kw", [dict(bidirectional=True), dict(bidirectional=True, m_backend_bidirectional=True)],
                         ids=["flip_add", "native"])
def test_bidirectional_models_see_both_directions(kw):
    model, ids, t = _model(**kw), _ids(), 20
    with torch.no_grad():
        a, b = model(ids), model(_perturbed(ids, t))
    assert (a[:, :t] - b[:, :t]).abs().amax(-1).min() > 1e-6  # every earlier position changed
    assert (a[:, t + 1:] - b[:, t + 1:]).abs().amax(-1).min() > 1e-6


def test_alternating_blocks_flip_even_indices():
    """Reference order: block 0 (and every even block) runs on the flipped sequence, odd blocks causally."""
    model, ids, t = _model(n_layer=1, bidirectional=True, bidirectional_alternating=True), _ids(), 20
    assert [b.mode for b in _model(n_layer=3, bidirectional=True, bidirectional_alternating=True)
            .xlstm_block_stack.blocks] == ["flipped", "causal", "flipped"]
    with torch.no_grad():
        a, b = model(ids), model(_perturbed(ids, t))
    assert torch.equal(a[:, t + 1:], b[:, t + 1:])  # anti-causal
    assert (a[:, : t + 1] - b[:, : t + 1]).abs().max() > 1e-4


def test_flip_add_is_block_plus_flipped_block():
    model, ids = _model(n_layer=1, bidirectional=True), _ids()
    block = model.xlstm_block_stack.blocks[0]
    with torch.no_grad():
        x = model.token_embedding(ids)
        expected = block._block(x) + block._block(x.flip(1)).flip(1)
        torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------- backends


@pytest.mark.parametrize("S", [37, 16, 5, 1])
def test_chunkwise_equals_parallel_values_and_grads(S):
    """Exact (float64) agreement at lengths that are not multiples of the chunk size, and its gradients."""
    inputs = _cell_inputs(S)
    g = torch.randn(2, 2, S, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for ref, fn in [(mlstm_parallel, mlstm_chunkwise), (mlstm_bidirectional_parallel, mlstm_bidirectional_chunkwise)]:
        xa = [t.clone().requires_grad_() for t in inputs]
        xb = [t.clone().requires_grad_() for t in inputs]
        ya, yb = ref(*xa), fn(*xb, chunk_size=16)
        torch.testing.assert_close(yb, ya, atol=1e-10, rtol=1e-10)
        for ga, gb in zip(torch.autograd.grad(ya, xa, g), torch.autograd.grad(yb, xb, g)):
            torch.testing.assert_close(gb, ga, atol=1e-9, rtol=1e-9)


def test_kernel_backend_equals_parallel_within_fp32():
    q, k, v, i, f = (t.float() for t in _cell_inputs(37))
    torch.testing.assert_close(mlstm_kernel(q, k, v, i, f, chunk_size=16), mlstm_parallel(q, k, v, i, f),
                               atol=1e-4, rtol=1e-4)


def _reference_bidirectional(q, k, v, i, f, eps=1e-6):
    """Literal transcription of DNA-xLSTM `parallel_stabilized_simple(bidirectional=True)`."""
    B, NH, S, DH = q.shape
    i, f = i.unsqueeze(-1), f.unsqueeze(-1)
    log_fgates = F.logsigmoid(f)
    ltr = torch.tril(torch.ones((S, S), dtype=torch.bool))
    cs = torch.cat([torch.zeros((B, NH, 1, 1), dtype=q.dtype), torch.cumsum(log_fgates, dim=-2)], dim=-2)
    rep = cs.repeat(1, 1, 1, S + 1)
    lower = (rep - rep.transpose(-2, -1))[:, :, 1:, 1:]
    rev = torch.cumsum(torch.flip(log_fgates, dims=(-2,)), dim=-2)
    upper = torch.flip(rev - rev.transpose(-2, -1), dims=(-1, -2))
    upper = torch.diagonal_scatter(upper, i.squeeze(-1), dim1=-2, dim2=-1)
    log_D = torch.where(ltr, lower, upper) + i.transpose(-2, -1)
    max_log_D = log_D.amax(-1, keepdim=True)
    C = (q @ (k / math.sqrt(DH)).transpose(-2, -1)) * torch.exp(log_D - max_log_D)
    normalizer = torch.maximum(C.sum(-1, keepdim=True).abs(), torch.exp(-max_log_D))
    return (C / (normalizer + eps)) @ v


def test_native_bidirectional_equals_explicit_quadratic_reference():
    inputs = _cell_inputs(29)
    ref = _reference_bidirectional(*inputs)
    torch.testing.assert_close(mlstm_bidirectional_parallel(*inputs), ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(mlstm_bidirectional_chunkwise(*inputs, chunk_size=8), ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kw", [{}, dict(bidirectional=True, m_backend_bidirectional=True)], ids=["causal", "native"])
def test_model_backends_agree_forward_and_grads(kw):
    """fp32 model, length 37 (chunk 16): the same logits and parameter gradients with every backend."""
    ids = _ids()
    results = {}
    for backend in CAUSAL_BACKENDS:
        model = _model(m_backend=backend, **kw).train()
        logits = model(ids)
        loss = F.cross_entropy(logits.flatten(0, 1), _ids(seed=5).flatten())
        loss.backward()
        results[backend] = (logits.detach(), {n: p.grad for n, p in model.named_parameters()})
    ref_logits, ref_grads = results["parallel"]
    for backend in ("chunkwise", "kernel"):
        logits, grads = results[backend]
        torch.testing.assert_close(logits, ref_logits, atol=2e-5, rtol=1e-5)
        for name, g in grads.items():
            # mlstm_kernels drops the normaliser's gradient (it cancels in the per-head LayerNorm up to eps)
            tol = 1e-4 if backend == "chunkwise" else 2e-3
            torch.testing.assert_close(g, ref_grads[name], atol=tol * ref_grads[name].abs().max().item() + 1e-7,
                                       rtol=tol, msg=lambda m: f"{backend} {name}: {m}")


# --------------------------------------------------------------------------------------------- layer pieces


def test_fast_cell_path_equals_reference_cell_path():
    """The layer's fused projection/gate path equals q_proj/k_proj/v_proj + cat(q, k, v) gates, with biases."""
    torch.manual_seed(0)
    layer = MLSTMLayer(32, num_heads=2, bias=True, chunk_size=16).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 21, 32, dtype=torch.float64)
    x_mlstm, _ = layer.proj_up(x).chunk(2, dim=-1)
    c = layer.conv1d(x_mlstm, silu=True)
    ref = layer.mlstm_cell(layer.q_proj(c), layer.k_proj(c), layer.v_proj(x_mlstm))
    torch.testing.assert_close(layer._cell_fast(c, x_mlstm), ref, atol=1e-12, rtol=1e-12)


def test_projection_blocks_larger_than_a_head_use_the_reference_path():
    model = _model(m_num_heads=8, m_qkv_proj_blocksize=16)  # DH = 8 < blocksize
    assert model(_ids()).shape == (2, 37, 12)


@pytest.mark.parametrize("causal", [True, False])
def test_conv_matches_conv1d(causal):
    torch.manual_seed(0)
    conv = CausalConv1d(6, 4, causal=causal).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64, requires_grad=True)
    for silu in (False, True):
        y = conv(x, silu=silu)
        ref = depthwise_conv1d_ref(x, conv.conv.weight, conv.conv.bias, causal)
        ref = F.silu(ref) if silu else ref
        torch.testing.assert_close(y, ref)
        g = torch.randn_like(y)
        params = (x, conv.conv.weight, conv.conv.bias)
        for a, b in zip(torch.autograd.grad(y, params, g), torch.autograd.grad(ref, params, g)):
            torch.testing.assert_close(a, b)


def test_conv_keeps_bf16_activations_in_bf16():
    """bf16 input (as under autocast) with fp32 weights: bf16 output and input gradient, fp32 weight gradients,
    values as the fp32 computation rounded to bf16 (the fp32 weights used to promote every activation after it)."""
    torch.manual_seed(0)
    conv = CausalConv1d(8, 4)
    x32 = torch.randn(2, 33, 8)
    x = x32.bfloat16().requires_grad_()
    y = conv(x, silu=True)
    assert y.dtype == torch.bfloat16
    ref = F.silu(depthwise_conv1d_ref(x.detach().float(), conv.conv.weight, conv.conv.bias))
    torch.testing.assert_close(y.float(), ref, atol=2e-2, rtol=2e-2)
    y.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and conv.conv.weight.grad.dtype == torch.float32


def test_headwise_and_multihead_norm_match_xlstm_math():
    torch.manual_seed(0)
    proj = LinearHeadwiseExpand(16, 4)
    x = torch.randn(3, 5, 16)
    ref = torch.einsum("...hd,hod->...ho", x.view(3, 5, 4, 4), proj.weight).reshape(3, 5, 16)
    torch.testing.assert_close(proj(x), ref)
    blocks = headwise_block_weights(proj.weight, 2)  # 2 groups of 2 blocks
    torch.testing.assert_close(torch.einsum("bsgd,ged->bsge", x.view(3, 5, 2, 8), blocks).reshape(3, 5, 16), ref)
    norm = MultiHeadLayerNorm(16)
    with torch.no_grad():
        norm.weight.normal_()
    h = torch.randn(2, 4, 5, 4)  # (B, NH, S, DH)
    gn = F.group_norm(h.transpose(1, 2).reshape(10, 16), 4, 1 + norm.weight, None, 1e-5).view(2, 5, 4, 4)
    torch.testing.assert_close(norm(h), gn.transpose(1, 2))


# --------------------------------------------------------------------------------------------- RoPE


def test_rope_tables_and_relative_positions():
    cos, sin = rope_cos_sin(8, 40)
    freqs = 1.0 / (500000.0 ** (torch.arange(0, 8, 2).float() / 8))  # llama2.c precompute_freqs_cis
    torch.testing.assert_close(cos, torch.cos(torch.outer(torch.arange(40).float(), freqs)))
    torch.testing.assert_close(sin, torch.sin(torch.outer(torch.arange(40).float(), freqs)))
    # the same q and k at every position: rotated dot products depend on the offset only
    q, k = torch.randn(8).expand(40, 8), torch.randn(8).expand(40, 8)
    dots = apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).t()
    torch.testing.assert_close(torch.diagonal(dots, 3)[:-1], torch.diagonal(dots, 3)[1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(apply_rope(q, cos, sin)[0], q[0])  # position 0: no rotation


def test_rope_model_runs_below_and_above_max_length_and_stays_causal():
    model = _model(m_position_embeddings=True)
    ids = _ids(L=40)  # max_length is 64
    with torch.no_grad():
        a, b = model(ids), model(_perturbed(ids, 20))
        assert model(_ids(L=80)).shape == (2, 80, 12)
        plain = _model()(ids)
    assert torch.equal(a[:, :20], b[:, :20])
    assert (a - plain).abs().max() > 1e-4  # positions change the outputs


# --------------------------------------------------------------------------------------------- model API


def test_api_shapes_and_attributes():
    model = _model()
    assert (model.d_model, model.vocab_size) == (32, 12)
    ids = _ids()
    assert model(ids).shape == (2, 37, 12) and model.hidden_states(ids).shape == (2, 37, 32)


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = _ids()
    grads = []
    for ckpt in (False, True):
        model = _model(gradient_checkpointing=ckpt, bidirectional=True).train()
        model(ids).square().mean().backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_bias_and_noncausal_conv_options():
    model = _model(m_bias=True, m_conv1d_causal=False, bidirectional=True)
    keys = set(model.state_dict())
    assert {"xlstm_block_stack.blocks.0.xlstm.proj_up.bias", "xlstm_block_stack.blocks.0.xlstm.q_proj.bias",
            "xlstm_block_stack.blocks.0.xlstm.proj_down.bias"} <= keys
    assert model(_ids()).shape == (2, 37, 12)


def test_from_reference_config_validates_and_fills():
    cfg = {"config": {"_target_": "models.dna_xlstm.modelling_xlstm.xLSTMConfig", "d_model": 32, "n_layer": 1,
                      "m_num_heads": 2, "tie_weights": False, "complement_map": None}}
    assert XLSTMLM.from_reference_config(cfg).n_layer == 1
    with pytest.raises(TypeError):
        XLSTMLM.from_reference_config({"config": {**cfg["config"], "d_modle": 3}})


def test_rcps_mlstm_model_is_rc_equivariant():
    """dnax extension: mLSTM layers wrapped in RCPSWrapper (the reference only supports RCPS with sLSTM)."""
    model = _model(n_layer=1, rcps=True)
    assert "xlstm_block_stack.blocks.0.xlstm.submodule.proj_up.weight" in model.state_dict()
    ids = _ids()
    comp = torch.tensor([COMPLEMENT_MAP[i] for i in range(12)])
    rc_ids = comp[ids.flip(-1)]
    with torch.no_grad():
        logits, rc_logits = model(ids), model(rc_ids)
        assert model.hidden_states(ids).shape == (2, 37, 64)
    torch.testing.assert_close(rc_logits, logits.flip(1)[..., comp], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("flip", [False, True], ids=["dnax", "reference_quirk"])
def test_rcps_slstm_model_is_rc_equivariant_unless_it_reproduces_the_reference(flip):
    """XLSTMLM(rcps=True) with sLSTM blocks: exactly RC-equivariant by default; `s_rc_head_flip=True` (what
    `from_reference_config` builds, for the reference's checkpoints) flips the heads in the RC branch and is not."""
    torch.manual_seed(0)
    model = XLSTMLM(d_model=32, n_layer=2, m_num_heads=2, s_num_heads=2, m_qkv_proj_blocksize=4, s_lstm_at=[0],
                    rcps=True, bidirectional=True, s_backend="vanilla", m_backend="parallel",
                    s_rc_head_flip=flip).eval()
    with torch.no_grad():
        for p in model.parameters():  # off the zero / ones initialisation, so the heads differ
            p.add_(0.3 * torch.randn_like(p))
    comp = torch.tensor([COMPLEMENT_MAP[i] for i in range(12)])
    ids = _ids()
    with torch.no_grad():
        err = (model(comp[ids.flip(-1)]) - model(ids).flip(1)[..., comp]).abs().max().item()
    assert (err > 0.1) if flip else (err < 1e-5), err
    cfg = {"config": {"_target_": "models.dna_xlstm.modelling_xlstm.xLSTMConfig", "d_model": 32, "n_layer": 2,
                      "s_lstm_at": [0], "rcps": True, "complement_map": None}}
    assert XLSTMLM.from_reference_config(cfg).init_kwargs["s_rc_head_flip"] is True
    for other in ({"rcps": False}, {"s_lstm_at": []}):  # where the flip does nothing, the default (comparable)
        config = {"config": {**cfg["config"], **other}}
        assert XLSTMLM.from_reference_config(config).init_kwargs["s_rc_head_flip"] is False


def test_kernel_backend_gets_autocast_dtype_inputs_and_fp32_gates(monkeypatch):
    """Under bf16 autocast the Triton backends get q, k, v in bf16 and the gates in fp32, and mlstm_kernels is told
    to run in bf16 (its custom_fwd casts every input to `autocast_kernel_dtype`, fp32 unless given: fp32 tiles ran
    ~12x slower on an H100)."""
    import dnax.models.layers.mlstm as mlstm

    seen = []

    def spy(q, k, v, i, f, chunk_size, eps, autocast_kernel_dtype):
        # mlstm_kernels casts all inputs to autocast_kernel_dtype under CUDA autocast (fp32 if not given)
        seen.append((q.dtype, k.dtype, v.dtype, i.dtype, f.dtype, autocast_kernel_dtype))
        return torch.zeros_like(q)

    monkeypatch.setattr(mlstm, "_kernels_fn", lambda device_type: spy)
    model = XLSTMLM(d_model=32, n_layer=1, m_num_heads=2, max_length=16, m_position_embeddings=True,
                    m_backend="kernel", bidirectional=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randint(7, 11, (1, 16)))
    assert seen == [(torch.bfloat16,) * 3 + (torch.float32,) * 2 + (torch.bfloat16,)]
    seen.clear()
    model(torch.randint(7, 11, (1, 16)))  # no autocast: inputs keep their dtype
    assert seen == [(torch.float32,) * 6]


@pytest.mark.parametrize("kw", [dict(bidirectional=False), dict(bidirectional=True, m_backend_bidirectional=True)],
                         ids=["causal", "native"])
def test_recomputed_cell_gives_the_same_gradients_and_saves_less(kw):
    """m_recompute_cell: identical loss and gradients; the activation bytes autograd keeps for backward drop by over
    a quarter even in this small model (about 2.8x for the 2M model at 4k, under bf16 autocast)."""
    torch.manual_seed(0)
    ids = torch.randint(7, 11, (2, 200))
    runs = []
    for recompute in (False, True):
        torch.manual_seed(1)
        model = XLSTMLM(d_model=64, n_layer=2, m_num_heads=2, max_length=256, m_backend="chunkwise",
                        m_chunk_size=32, m_recompute_cell=recompute, **kw)
        saved = {}

        def pack(t):  # activations only (not parameters), each storage once
            if not (t.is_leaf and t.requires_grad):
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        loss.backward()
        runs.append((loss.detach(), [p.grad.clone() for p in model.parameters()], sum(saved.values())))
    (l0, g0, b0), (l1, g1, b1) = runs
    torch.testing.assert_close(l1, l0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert b1 < 0.75 * b0, (b0, b1)


def test_kernel_backend_is_opaque_to_torch_compile():
    """torch.compile traces the model around the Triton/mlstm_kernels cell, not into it (mlstm_kernels' autograd
    functions break graphs with Tensor.item() and made compile time explode); outputs equal eager."""
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    model = XLSTMLM(d_model=32, n_layer=2, m_num_heads=2, max_length=64, m_backend="kernel", m_position_embeddings=True)
    ids = torch.randint(7, 11, (1, 64))
    explained = dynamo.explain(model)(ids)
    assert all("item()" not in str(r.reason) for r in explained.break_reasons)
    dynamo.reset()
    torch.testing.assert_close(torch.compile(model, backend="eager")(ids), model(ids))


def test_two_level_prefix_sums_equal_the_direct_weighted_sum():
    """The blocked inter-chunk sums (used from NC > 2 blocks) equal the masked NC x NC weight matrix, values and
    exact row max, also with a ragged last block and chunks that carry no weight (w = -inf)."""
    from dnax.models.layers.mlstm import _prefix_sums

    g = torch.Generator().manual_seed(0)
    NC, Fdim = 37, 5
    X = torch.randn(2, NC, Fdim, generator=g, dtype=torch.float64)
    G = (-torch.rand(2, NC, generator=g, dtype=torch.float64) * 3).cumsum(-1)
    A, B = torch.nn.functional.pad(G[:, :-1], (1, 0)), G
    w = torch.randn(2, NC, generator=g, dtype=torch.float64) * 4
    w[0, 5:9] = -float("inf")
    Y_direct, M_direct = _prefix_sums(X, A, B, w, block=NC)  # NC <= 2 * block: the direct path
    Y_blocked, M_blocked = _prefix_sums(X, A, B, w, block=4)
    torch.testing.assert_close(M_blocked, M_direct)
    torch.testing.assert_close(Y_blocked, Y_direct)
    assert M_direct[:, 0].eq(-float("inf")).all() and Y_direct[:, 0].eq(0).all()


@pytest.mark.parametrize("S", [256, 300])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["causal", "native"])
def test_chunkwise_with_many_chunks_equals_parallel(S, bidirectional):
    """chunk size 4: 64-75 chunks, so the inter-chunk states take the two-level path; values and all gradients."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, S, 8, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    i = (torch.randn(1, 2, S, generator=g, dtype=torch.float64) * 2).requires_grad_()
    f = (torch.randn(1, 2, S, generator=g, dtype=torch.float64) + 3).requires_grad_()
    fast, ref = ((mlstm_bidirectional_chunkwise, mlstm_bidirectional_parallel) if bidirectional
                 else (mlstm_chunkwise, mlstm_parallel))
    h, h_ref = fast(q, k, v, i, f, chunk_size=4), ref(q, k, v, i, f)
    torch.testing.assert_close(h, h_ref, atol=1e-9, rtol=1e-8)
    dh = torch.randn(h.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(h, (q, k, v, i, f), dh), torch.autograd.grad(h_ref, (q, k, v, i, f), dh)):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-7)


def test_two_level_suffix_sums_equal_the_direct_weighted_sum():
    """`reverse=True` (keys after the query chunk, the native bidirectional's backward states): blocked == direct."""
    from dnax.models.layers.mlstm import _prefix_sums

    g = torch.Generator().manual_seed(1)
    NC = 35
    X = torch.randn(3, NC, 4, generator=g, dtype=torch.float64)
    G = (-torch.rand(3, NC, generator=g, dtype=torch.float64) * 3).cumsum(-1)
    A, B = -G, -torch.nn.functional.pad(G[:, :-1], (1, 0))
    w = torch.randn(3, NC, generator=g, dtype=torch.float64) * 4
    w[1, -6:-2] = -float("inf")
    Y_direct, M_direct = _prefix_sums(X, A, B, w, reverse=True, block=NC)
    Y_blocked, M_blocked = _prefix_sums(X, A, B, w, reverse=True, block=4)
    torch.testing.assert_close(M_blocked, M_direct)
    torch.testing.assert_close(Y_blocked, Y_direct)
    assert M_direct[:, -1].eq(-float("inf")).all() and Y_direct[:, -1].eq(0).all()

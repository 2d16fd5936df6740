"""dnax Mamba2 against mamba_ssm's Mamba2: the same parameters under one seed (its state dict loads as is), the
output of mamba_ssm's own pure-PyTorch pieces (`ssd_minimal_discrete`, `rms_norm_ref`) wired as its non-fused
forward; the chunked SSD scan against a step-by-step recurrence in fp64 (values and gradients, any length);
causality; MambaLM with `ssm_cfg={"layer": "Mamba2"}` trains on CPU."""
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
from mamba_ssm.modules.mamba2 import Mamba2 as RefMamba2  # noqa: E402
from mamba_ssm.modules.ssd_minimal import ssd_minimal_discrete  # noqa: E402
from mamba_ssm.ops.triton.layernorm_gated import rms_norm_ref  # noqa: E402

from dnax.models.backbones.mamba import MambaLM  # noqa: E402
from dnax.models.layers.mamba2 import Mamba2, ssd_scan  # noqa: E402

SMALL = dict(d_state=8, headdim=8, chunk_size=4)


def _recurrence(x, dt, A, B, C):
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t, per head, step by step."""
    b, L, H, P = x.shape
    rep = H // B.shape[2]
    B, C = B.repeat_interleave(rep, 2), C.repeat_interleave(rep, 2)
    h = x.new_zeros(b, H, P, B.shape[-1])
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t] * A)[..., None, None] * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None]
        ys.append((h * C[:, t, :, None]).sum(-1))
    return torch.stack(ys, 1)


@pytest.mark.parametrize("L, chunk, groups", [(13, 4, 1), (8, 8, 2), (5, 16, 1), (20, 3, 2)])
def test_ssd_scan_equals_the_recurrence(L, chunk, groups):
    g = torch.Generator().manual_seed(L)
    b, H, P, N = 2, 4, 3, 5
    x = torch.randn(b, L, H, P, generator=g, dtype=torch.float64, requires_grad=True)
    dt = (torch.rand(b, L, H, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    A = (-torch.rand(H, generator=g, dtype=torch.float64) * 4).requires_grad_()
    B, C = (torch.randn(b, L, groups, N, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    dy = torch.randn(b, L, H, P, generator=g, dtype=torch.float64)
    inputs = (x, dt, A, B, C)
    got = ssd_scan(*inputs, chunk_size=chunk)
    ref = _recurrence(*inputs)
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=1e-10)
    for mine, theirs in zip(torch.autograd.grad(got, inputs, dy), torch.autograd.grad(ref, inputs, dy)):
        torch.testing.assert_close(mine, theirs, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("kw", [dict(), dict(ngroups=2, D_has_hdim=True, conv_init=0.5),
                                dict(d_ssm=32, norm_before_gate=True), dict(rmsnorm=False, bias=True)],
                         ids=["default", "groups-Dhdim-convinit", "mlp-branch", "no-rmsnorm"])
def test_same_parameters_and_output_as_mamba_ssm(kw):
    torch.manual_seed(0)
    ref = RefMamba2(32, **SMALL, **kw)
    torch.manual_seed(0)
    ours = Mamba2(32, **SMALL, **kw)
    theirs = ref.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs[name]), name
    u = torch.randn(2, 12, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours(u), _reference_forward(ref, u), atol=1e-5, rtol=1e-5)


def _reference_forward(m, u):
    """mamba_ssm Mamba2's non-fused forward with its pure-PyTorch pieces in place of its Triton kernels."""
    b, L, _ = u.shape
    zxbcdt = m.in_proj(u)
    d_mlp = (zxbcdt.shape[-1] - 2 * m.d_ssm - 2 * m.ngroups * m.d_state - m.nheads) // 2
    z0, x0, z, xBC, dt = torch.split(
        zxbcdt, [d_mlp, d_mlp, m.d_ssm, m.d_ssm + 2 * m.ngroups * m.d_state, m.nheads], dim=-1)
    xBC = m.act(m.conv1d(xBC.transpose(1, 2)).transpose(1, 2)[:, :-(m.d_conv - 1)])
    x, B, C = torch.split(xBC, [m.d_ssm, m.ngroups * m.d_state, m.ngroups * m.d_state], dim=-1)
    dt = F.softplus(dt + m.dt_bias)
    x = x.reshape(b, L, m.nheads, m.headdim)
    B, C = (t.reshape(b, L, m.ngroups, m.d_state).repeat_interleave(m.nheads // m.ngroups, 2) for t in (B, C))
    A = -torch.exp(m.A_log.float())
    y, _ = ssd_minimal_discrete(x * dt[..., None], A * dt, B, C, block_len=L)
    D = m.D.view(m.nheads, m.headdim) if m.D_has_hdim else m.D[:, None]
    y = (y + x * D).reshape(b, L, m.d_ssm)
    if m.rmsnorm:
        y = rms_norm_ref(y, m.norm.weight, None, z=z, eps=m.norm.eps, group_size=m.norm.group_size,
                         norm_before_gate=m.norm_before_gate)
    else:
        y = y * F.silu(z)
    if d_mlp > 0:
        y = torch.cat([F.silu(z0) * x0, y], dim=-1)
    return m.out_proj(y)


def test_causal():
    torch.manual_seed(0)
    m = Mamba2(32, **SMALL).double()
    u = torch.randn(1, 11, 32, dtype=torch.float64)
    v = u.clone()
    v[:, 7] += 1.0
    out_u, out_v = m(u), m(v)
    assert torch.equal(out_u[:, :7], out_v[:, :7]) and not torch.allclose(out_u[:, 7:], out_v[:, 7:])


def test_mamba_lm_with_mamba2_trains_on_cpu():
    torch.manual_seed(0)
    lm = MambaLM(d_model=32, n_layer=2, ssm_cfg={"layer": "Mamba2", **SMALL})
    lm.reset_parameters()
    assert isinstance(lm.backbone.layers[0].mixer, Mamba2)
    ids = torch.randint(7, 11, (2, 24))
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(lm(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="divisible by headdim"):
        Mamba2(32, headdim=24)
    with pytest.raises(ValueError, match="A_init_range"):
        Mamba2(32, headdim=8, A_init_range=(0, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (mamba_ssm's Triton scan)")
def test_mamba_ssm_triton_scan_equals_the_pytorch_scan(monkeypatch):
    from dnax.models.layers import mamba2

    if mamba2._mamba_ssm_chunk_scan() is None:
        pytest.skip("mamba_ssm's Triton scan does not import here")
    torch.manual_seed(0)
    m = Mamba2(64, d_state=16, headdim=16, chunk_size=32).cuda()
    u = torch.randn(2, 100, 64, device="cuda")
    with_kernel = m(u)
    monkeypatch.setattr(mamba2, "_mamba_ssm_chunk_scan", lambda: None)
    torch.testing.assert_close(with_kernel, m(u), atol=1e-3, rtol=1e-3)

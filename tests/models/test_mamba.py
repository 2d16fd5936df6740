"""dnax Mamba mixer and MambaLM against the installed mamba_ssm (slow path with `selective_scan_ref`, RMSNorm via
`rms_norm_ref`): same parameters under one seed, same outputs and gradients; causality."""
import importlib.util

import pytest
import torch


def stub_selective_scan_cuda() -> None:
    """mamba_ssm imports its CUDA extension unguarded: register an empty stand-in where it is not installed (with a
    module spec, so later `importlib.util.find_spec` calls in other test modules still work)."""
    import importlib.machinery
    import sys
    import types

    if "selective_scan_cuda" in sys.modules or importlib.util.find_spec("selective_scan_cuda") is not None:
        return
    stub = types.ModuleType("selective_scan_cuda")
    stub.__spec__ = importlib.machinery.ModuleSpec("selective_scan_cuda", None)
    sys.modules["selective_scan_cuda"] = stub


if importlib.util.find_spec("mamba_ssm") is None:
    pytest.skip("mamba_ssm is not installed", allow_module_level=True)
stub_selective_scan_cuda()
import mamba_ssm.modules.mamba_simple as mamba_simple  # noqa: E402
from mamba_ssm.models.config_mamba import MambaConfig  # noqa: E402
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel  # noqa: E402
from mamba_ssm.ops.selective_scan_interface import selective_scan_ref  # noqa: E402
from mamba_ssm.ops.triton import layer_norm as mamba_layer_norm  # noqa: E402

from dnax.models.backbones.mamba import MambaLM  # noqa: E402
from dnax.models.layers.mamba import Mamba  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture
def reference_cpu(monkeypatch):
    """mamba_ssm's slow path on CPU: selective_scan_ref for the scan, rms_norm_ref instead of the Triton RMSNorm."""
    monkeypatch.setattr(mamba_simple, "selective_scan_fn", selective_scan_ref)

    def rms_forward(self, x, residual=None, prenorm=False, residual_in_fp32=False):
        return mamba_layer_norm.rms_norm_ref(x, self.weight, self.bias, residual=residual, eps=self.eps,
                                             prenorm=prenorm)

    monkeypatch.setattr(mamba_layer_norm.RMSNorm, "forward", rms_forward)


@pytest.mark.parametrize("kw", [dict(), dict(bias=True, dt_init="constant", d_state=8, expand=1.5)],
                         ids=["default", "bias_constant_dt"])
def test_mixer_matches_reference_params_outputs_and_grads(reference_cpu, kw):
    torch.manual_seed(0)
    ref = mamba_simple.Mamba(16, use_fast_path=False, **kw)
    torch.manual_seed(0)
    ours = Mamba(16, chunk_size=8, **kw)
    sr, so = ref.state_dict(), ours.state_dict()
    assert list(sr) == list(so)
    for k in sr:  # same random draws in the same order
        assert torch.equal(sr[k], so[k]), k
    with torch.no_grad():  # non-trivial biases where the reference init zeroes them
        for m in (ref, ours):
            if m.in_proj.bias is not None:
                m.in_proj.bias.copy_(torch.linspace(-0.5, 0.5, m.in_proj.bias.numel()))
    x = torch.randn(2, 37, 16)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yo = ref(xr), ours(xo)
    torch.testing.assert_close(yo, yr, **TOL)
    g = torch.randn_like(yr)
    (yr * g).sum().backward()
    (yo * g).sum().backward()
    torch.testing.assert_close(xo.grad, xr.grad, **TOL)
    for (name, pr), po in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(po.grad, pr.grad, **TOL, msg=name)


def test_mixer_markers_and_init_ranges():
    m = Mamba(32, dt_min=0.01, dt_max=0.05)
    assert m.A_log._no_weight_decay and m.D._no_weight_decay and m.dt_proj.bias._no_reinit
    dt = torch.nn.functional.softplus(m.dt_proj.bias)
    assert dt.min() >= 0.01 - 1e-6 and dt.max() <= 0.05 + 1e-6
    m.reset_parameters()  # keeps the special init
    assert torch.equal(m.A_log[3], torch.log(torch.arange(1.0, 17.0)))
    assert torch.all(torch.nn.functional.softplus(m.dt_proj.bias) <= 0.05 + 1e-6)


def test_scan_fn_replaces_the_scan_with_the_same_results():
    """`scan_fn` (here mamba_ssm's `selective_scan_ref`, as the benchmark's reference rows) is the scan that runs."""
    calls = []

    def counting_ref(*args, **kw):
        calls.append(kw)
        return selective_scan_ref(*args, **kw)

    torch.manual_seed(0)
    ours = Mamba(16, d_state=4, chunk_size=4)
    swapped = Mamba(16, d_state=4, scan_fn=counting_ref)
    swapped.load_state_dict(ours.state_dict())
    x = torch.randn(2, 19, 16)
    xo, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    yo, ys = ours(xo), swapped(xs)
    assert len(calls) == 1 and "chunk_size" not in calls[0]
    torch.testing.assert_close(ys, yo, **TOL)
    ys.square().sum().backward()
    yo.square().sum().backward()
    torch.testing.assert_close(xs.grad, xo.grad, **TOL)
    for (name, po), ps in zip(ours.named_parameters(), swapped.parameters()):
        torch.testing.assert_close(ps.grad, po.grad, **TOL, msg=name)


def test_mixer_is_causal():
    torch.manual_seed(1)
    m = Mamba(16, chunk_size=4).eval()
    x = torch.randn(1, 24, 16)
    t = 13
    x2 = x.clone()
    x2[:, t] += 1.0
    with torch.no_grad():
        y, y2 = m(x), m(x2)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert (y[:, t:] - y2[:, t:]).abs().max() > 1e-3


def _reference_lm(seed, **cfg):
    torch.manual_seed(seed)
    ref = MambaLMHeadModel(MambaConfig(vocab_size=12, **cfg), initializer_cfg=dict(initializer_range=0.02))
    for m in ref.modules():
        if isinstance(m, mamba_simple.Mamba):
            m.use_fast_path = False
    return ref


def test_lm_matches_reference_layout_init_and_logits(reference_cpu):
    cfg = dict(d_model=32, n_layer=2, ssm_cfg=dict(d_state=16), rms_norm=True, residual_in_fp32=False,
               fused_add_norm=False)
    ref = _reference_lm(3, **cfg)
    torch.manual_seed(3)
    ours = MambaLM(**cfg, initializer_cfg=dict(initializer_range=0.02))
    sr, so = ref.state_dict(), ours.state_dict()
    assert list(sr) == list(so) and so["lm_head.weight"].shape == (16, 32)  # vocab 12 padded to 16
    for k in sr:
        assert torch.equal(sr[k], so[k]), k
    assert ours.lm_head.weight is ours.backbone.embedding.weight  # tied: one parameter
    ids = torch.randint(0, 12, (2, 40))
    torch.testing.assert_close(ours(ids), ref(ids).logits, **TOL)


def test_reference_mamba_run_loads_through_convert(reference_cpu, tmp_path):
    """A caduceus/DNA-xLSTM Mamba run (configs/model/mamba.yaml layout, Lightning keys `model.*`, the run's
    `checkpoints/last.ckpt`) -> `dnax.convert.load_reference` -> the reference model's logits."""
    import json

    from dnax.convert import load_reference

    cfg = dict(d_model=32, n_layer=2, ssm_cfg=dict(d_state=8), rms_norm=True, residual_in_fp32=False,
               fused_add_norm=False)
    ref = _reference_lm(5, **cfg).eval()
    with torch.no_grad():
        for q in ref.parameters():  # every parameter matters
            q.add_(0.05 * torch.randn_like(q))
    run = tmp_path / "mamba_run"
    (run / "checkpoints").mkdir(parents=True)
    config = {"config": {"_target_": "mamba_ssm.models.config_mamba.MambaConfig", "vocab_size": 12,
                         "pad_vocab_size_multiple": 8, **cfg}, "initializer_cfg": {"initializer_range": 0.02}}
    (run / "model_config.json").write_text(json.dumps(config))
    torch.save({"state_dict": {f"model.{k}": v for k, v in ref.state_dict().items()}}, run / "checkpoints/last.ckpt")
    ours = load_reference(run)
    assert type(ours) is MambaLM
    ids = torch.randint(0, 12, (2, 40))
    torch.testing.assert_close(ours(ids), ref(ids).logits, **TOL)


def test_lm_is_causal_and_trains():
    torch.manual_seed(0)
    lm = MambaLM(d_model=16, n_layer=2)
    ids = torch.randint(7, 11, (2, 30))
    ids2 = ids.clone()
    ids2[:, 20] = 3
    with torch.no_grad():
        a, b = lm(ids), lm(ids2)
    assert torch.equal(a[:, :20], b[:, :20]) and not torch.equal(a[:, 20:], b[:, 20:])
    loss = torch.nn.functional.cross_entropy(lm(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in lm.parameters())


def test_lm_from_reference_config_and_reset():
    cfg = {"config": {"_target_": "mamba_ssm.models.config_mamba.MambaConfig", "d_model": 16, "n_layer": 2,
                      "vocab_size": 12, "pad_vocab_size_multiple": 8, "rms_norm": True, "fused_add_norm": True,
                      "residual_in_fp32": False, "ssm_cfg": {"d_state": 4, "d_conv": 4, "expand": 2}},
           "initializer_cfg": {"initializer_range": 0.02, "rescale_prenorm_residual": True}}
    lm = MambaLM.from_reference_config(cfg)
    assert lm.backbone.layers[1].mixer.A_log.shape == (32, 4) and lm.init_kwargs["initializer_cfg"]
    lm.reset_parameters()
    assert lm.lm_head.weight is lm.backbone.embedding.weight
    with pytest.raises(TypeError):
        MambaLM.from_reference_config({"config": {"d_model": 16, "typo": 1}})




def test_auto_scan_backend_picks_triton_on_cuda_without_mamba_ssms_kernel(monkeypatch):
    """'auto' on CUDA: mamba_ssm's CUDA scan where it imports, else dnax's Triton scan (4-5x the PyTorch scan's
    train step on an H100) where triton and kernels/ import, else the PyTorch scan; CPU tensors: the PyTorch scan."""
    import dnax.models.layers.mamba as mamba_layer

    cuda_like = type("CudaLike", (), {"is_cuda": True})()
    m = Mamba(16)
    monkeypatch.setattr(mamba_layer, "cuda_kernels", lambda: {})
    assert m.triton_scan(cuda_like) and not m.triton_scan(torch.zeros(1))
    assert not Mamba(16, scan_backend="torch").triton_scan(cuda_like)
    monkeypatch.setattr(mamba_layer, "cuda_kernels", lambda: {"selective_scan_fn": object()})
    assert not m.triton_scan(cuda_like)
    monkeypatch.setattr(mamba_layer, "cuda_kernels", lambda: {})
    monkeypatch.setattr(mamba_layer, "auto_picks_triton", lambda x: False)
    assert not m.triton_scan(cuda_like)


def test_triton_kernels_importable_needs_triton_and_the_repositorys_kernels(monkeypatch):
    import dnax.models.layers.common as common

    assert common.triton_kernels_importable.__wrapped__()  # the test environment has both
    real = importlib.util.find_spec
    for missing in ("triton", "kernels.selective_scan"):
        monkeypatch.setattr(common.importlib.util, "find_spec", lambda n, m=missing: None if n == m else real(n))
        assert not common.triton_kernels_importable.__wrapped__()

    def not_a_package(name):
        raise ModuleNotFoundError("No module named 'kernels.selective_scan'; 'kernels' is not a package")

    monkeypatch.setattr(common.importlib.util, "find_spec", not_a_package)
    assert not common.triton_kernels_importable.__wrapped__()

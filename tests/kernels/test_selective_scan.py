"""The Triton selective scan (`selective_scan(..., triton=True)`, `Mamba(scan_backend="triton")`) against dnax's
PyTorch scan in fp64 (itself tested against mamba_ssm's `selective_scan_ref` in tests/models/test_selective_scan.py):
output and every input gradient, one and two groups (Mamba, BiMamba), lengths around the 64-step chunk, the
sequence walked by one program per channel block or split in time (`time_splits`)."""
import pytest
import torch

from dnax.models.backbones.caduceus import BiMamba
from dnax.models.layers.mamba import Mamba
from dnax.models.layers.selective_scan import selective_scan
import kernels.selective_scan
from kernels.selective_scan import scan_forward, split_layout, time_splits

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# (batch, D, L, N, groups): L below, at and above the 64-step chunk; D not a multiple of the channel block
SHAPES_CPU = [(2, 24, 9, 16, 1), (1, 40, 70, 5, 2), (2, 16, 64, 16, 1), (1, 8, 300, 4, 1)]
SHAPES_GPU = [(4, 512, 1024, 16, 2), (2, 384, 1000, 16, 1), (1, 256, 4097, 64, 1)]
SHAPES = SHAPES_GPU if DEVICE == "cuda" else SHAPES_CPU


def _inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch, dim, L, N, G = shape
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return dict(u=r(batch, dim, L), delta=r(batch, dim, L) * 0.5, A=-torch.rand(dim, N, generator=g,
                                                                                   dtype=torch.float64) * 3,
                B=r(batch, G, N, L), C=r(batch, G, N, L), D=r(dim), z=r(batch, dim, L), delta_bias=r(dim) * 0.3)


def _run(inputs, dtype, dy, triton):
    leaves = {k: v.to(DEVICE, dtype).detach().requires_grad_() for k, v in inputs.items()}
    out = selective_scan(**leaves, delta_softplus=True, triton=triton)
    out.backward(dy.to(DEVICE, dtype))
    return {"out": out.detach().double().cpu(), **{k: v.grad.double().cpu() for k, v in leaves.items()}}


@pytest.mark.parametrize("splits", [None, 3], ids=["auto_splits", "3_splits"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_triton_scan_equals_pytorch_scan(shape, splits, monkeypatch):
    """`splits` 3: the time is cut into (up to) 3 splits of whole chunks, walked in parallel and joined (passes 1-2),
    wherever the shape has more than one chunk."""
    if splits is not None:
        monkeypatch.setattr(kernels.selective_scan, "time_splits", lambda *args: splits)
    inputs = _inputs(shape)
    dy = torch.randn(shape[0], shape[1], shape[2], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = _run(inputs, torch.float64, dy, triton=False)
    torch32 = _run(inputs, torch.float32, dy, triton=False)
    triton32 = _run(inputs, torch.float32, dy, triton=True)
    for name, ref in exact.items():
        scale = ref.abs().max().item()
        bound = max(1e-5 * scale, 4 * (torch32[name] - ref).abs().max().item())
        err = (triton32[name] - ref).abs().max().item()
        assert err <= bound, f"{name}: max |triton - fp64| {err:.3g} > {bound:.3g} (scale {scale:.3g})"


def test_last_state_and_its_gradient():
    inputs = _inputs((2, 24, 11, 16, 1))
    dlast = torch.randn(2, 24, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    results = []
    for dtype, triton in ((torch.float64, False), (torch.float32, True)):
        leaves = {k: v.to(DEVICE, dtype).detach().requires_grad_() for k, v in inputs.items()}
        out, last = selective_scan(**leaves, delta_softplus=True, return_last_state=True, chunk_size=4,
                                   triton=triton)
        (last * dlast.to(DEVICE, dtype)).sum().backward()
        results.append({"last": last.detach(), **{k: v.grad for k, v in leaves.items()}})
    for name, ref in results[0].items():
        if name in ("D", "z"):  # the last state does not depend on the skip or the gate
            assert ref is None and results[1][name] is None
            continue
        torch.testing.assert_close(results[1][name].double(), ref, atol=1e-5, rtol=1e-4, msg=name)


def test_time_splits_fill_an_idle_gpu_only(monkeypatch):
    """One program per (batch, group, channel block) unless fewer than half the multiprocessors would be busy; then
    about two programs per multiprocessor, each split at least MIN_SPLIT_CHUNKS chunks; never on CPU."""
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: type("P", (), {"multi_processor_count": 132}))
    cuda = torch.device("cuda")
    assert time_splits(32768, 64, 8, cuda) == 33  # Mamba (256 channels, 4 blocks) at 2 x 32768
    assert time_splits(32768, 64, 65, cuda) == 5
    assert time_splits(32768, 64, 66, cuda) == 1  # half the GPU busy already
    assert time_splits(1024, 64, 128, cuda) == 1  # 32 x 1024: the layout measured on the H100
    assert time_splits(1024, 64, 8, cuda) == 4  # capped: 16 chunks, 4 per split
    assert time_splits(200, 64, 1, cuda) == 1
    assert time_splits(32768, 64, 8, torch.device("cpu")) == 1
    # whole chunks per split: the count used can be below the count wanted, and never exceeds the chunks
    assert split_layout(32768, 64, 33) == (32, 1024)
    assert split_layout(300, 64, 4) == (3, 128)
    assert split_layout(1024, 64, 64) == (16, 64)


def _module_grads(module, x, dy):
    y = module(x)
    y.backward(dy)
    return {"y": y.detach(), **{n: p.grad for n, p in module.named_parameters()}}


@pytest.mark.parametrize("make", [lambda: Mamba(32, d_state=8), lambda: BiMamba(32, d_state=8)],
                         ids=["Mamba", "BiMamba"])
def test_scan_backend_triton_of_the_layers_equals_torch(make):
    torch.manual_seed(0)
    layer = make().to(DEVICE)
    x, dy = torch.randn(2, 13, 32, device=DEVICE), torch.randn(2, 13, 32, device=DEVICE)
    grads = {}
    for backend in ("torch", "triton"):
        layer.zero_grad()
        for m in layer.modules():
            if isinstance(m, Mamba):
                m.scan_backend = backend
        grads[backend] = _module_grads(layer, x, dy)
    for name, ref in grads["torch"].items():
        torch.testing.assert_close(grads["triton"][name], ref, atol=1e-5, rtol=1e-4, msg=name)


def test_errors():
    with pytest.raises(ValueError, match="scan_backend must be 'auto', 'torch' or 'triton'"):
        Mamba(16, scan_backend="cuda")
    u = torch.randn(1, 4, 5, device=DEVICE)
    with pytest.raises(ValueError, match="variable B and C"):
        selective_scan(u, u, -torch.ones(4, 2, device=DEVICE), torch.ones(4, 2, device=DEVICE),
                       torch.ones(1, 2, 5, device=DEVICE), triton=True)
    with pytest.raises(ValueError, match="d_state 512 > 256"):
        scan_forward(*(torch.zeros(2, 1, 1, 4) for _ in range(2)), torch.zeros(1, 4, 512),
                     *(torch.zeros(2, 1, 1, 1, 512) for _ in range(2)), 64)


def test_triton_scan_needs_cuda_or_the_interpreter_and_triton_layers_run_pytorch_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    u = torch.randn(1, 4, 5)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        selective_scan(u, u, -torch.ones(4, 2), torch.ones(1, 2, 5), torch.ones(1, 2, 5), triton=True)
    # a model trained with scan_backend "triton" still evaluates on CPU: the PyTorch scan, same result as "torch"
    torch.manual_seed(0)
    layer = BiMamba(16, d_state=4, scan_backend="triton")
    x = torch.randn(1, 6, 16)
    y = layer(x)
    for m in layer.modules():
        if isinstance(m, Mamba):
            m.scan_backend = "torch"
    assert torch.equal(y, layer(x))

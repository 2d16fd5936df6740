"""What the layers' 'auto' backends run on this machine:

    python -m dnax.backends                 # the device training would use (CUDA if there is one)
    python -m dnax.backends --device cpu

prints which optional packages import (triton, the repository's `kernels/`, mamba_ssm's CUDA extension,
causal_conv1d) and, per layer, what 'auto' picks, as a markdown table. Each row asks the layer's own decision
(the same methods a forward pass calls) on a tensor of that device, so the table says what a run does.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

import torch

from dnax.models.layers.common import triton_kernels_importable
from dnax.models.layers.mamba import Mamba, cuda_kernels
from dnax.models.layers.mamba2 import _mamba_ssm_chunk_scan
from dnax.models.layers.mlstm import mlstm_backend_fn, mlstm_bidirectional_chunkwise, resolve_backend
from dnax.models.layers.slstm import SLSTMCell

MLSTM = {"kernel": "mlstm_kernels' chunkwise Triton kernels", "chunkwise": "dnax's chunkwise PyTorch form",
         "parallel": "the quadratic parallel form"}


def _slstm(probe: Any, head_dim: int) -> str:
    cell = SLSTMCell(2 * head_dim, 2, backend="auto")
    if cell._auto_triton(probe):
        return "dnax's Triton kernels (`kernels/slstm_recurrence.py`)"
    if probe.is_cuda:
        return "the xlstm CUDA kernel, JIT-built on first use (PyTorch loops if the build fails)"
    return "dnax's fused PyTorch recurrence"


def _mamba(probe: Any) -> str:
    mixer = Mamba(16)
    if mixer._fused_cuda(probe):
        return "mamba_ssm's fused CUDA path (mamba_inner_fn + causal_conv1d)"
    if mixer.cuda_scan_kernel(probe) is not None:
        return "mamba_ssm's CUDA selective scan"
    if mixer.triton_scan(probe):
        return "dnax's Triton selective scan (`kernels/selective_scan.py`)"
    return "dnax's chunked PyTorch selective scan"


def auto_choices(probe: Any) -> list[tuple[str, str]]:
    """(layer, what 'auto' runs) for inputs like `probe` (a tensor: its device decides)."""
    device = torch.device("cuda" if probe.is_cuda else "cpu")
    bidirectional = mlstm_backend_fn("auto", True, device)
    mamba = _mamba(probe)
    ssd = _mamba_ssm_chunk_scan() if probe.is_cuda else None
    return [
        ("mLSTM, causal (also flip-and-add, alternating)", MLSTM[resolve_backend("auto", device)]),
        ("mLSTM, native bidirectional", MLSTM["chunkwise"] + " (linear memory)"
         if bidirectional is mlstm_bidirectional_chunkwise else bidirectional.__name__),
        ("sLSTM, head dim <= 64", _slstm(probe, 64)),
        ("sLSTM, head dim > 64", _slstm(probe, 128)),
        ("Mamba", mamba),
        ("Caduceus (BiMamba, PH / PS)", mamba + ("" if "mamba_ssm" in mamba else ", both directions in one call")),
        ("Mamba2", "mamba_ssm's Triton SSD scan" if ssd is not None else "dnax's chunked SSD scan in PyTorch"),
        ("Transformer++", "torch's scaled_dot_product_attention (flash / memory-efficient kernels on CUDA)"),
        ("HyenaDNA", "FFT long convolution (torch.fft)"),
    ]


def environment(device: torch.device) -> list[tuple[str, str]]:
    """(package or device, what is here) for the things the choices depend on."""
    found = lambda name: importlib.util.find_spec(name) is not None  # noqa: E731
    triton = "not installed"
    if found("triton"):
        import triton as triton_module

        triton = triton_module.__version__
    kernels = cuda_kernels()
    return [
        ("device", torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"),
        ("torch", torch.__version__),
        ("triton", triton),
        ("dnax kernels/ (Triton)", "importable" if triton_kernels_importable() else "not importable"),
        ("mamba_ssm CUDA selective scan", "imports" if kernels.get("selective_scan_fn") else "missing"),
        ("causal_conv1d", "imports" if kernels.get("causal_conv1d_fn") else "missing"),
    ]


def table(rows: list[tuple[str, str]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dnax.backends", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None,
                    help="default: cuda if a GPU is visible, else cpu")
    args = ap.parse_args(argv)
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    device = torch.device(name)
    probe = torch.empty(0, device=device)
    print(table(environment(device), ("component", "here")))
    print()
    print(table(auto_choices(probe), ("layer", "'auto' runs")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m dnax.backends`: what each layer's 'auto' runs here, from the layers' own decisions."""
import os
import subprocess
import sys

import dnax.models.layers.common as common
from dnax.backends import auto_choices, main


class _CudaLike:
    """Stands in for a CUDA tensor (CI has no GPU)."""
    is_cuda = True


def test_cpu_table_names_the_pytorch_paths(capsys):
    assert main(["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| device | CPU |" in out and "| torch | " in out
    assert "| Mamba | dnax's chunked PyTorch selective scan |" in out
    assert "| sLSTM, head dim <= 64 | dnax's fused PyTorch recurrence |" in out
    assert "| mLSTM, native bidirectional | dnax's chunkwise PyTorch form (linear memory) |" in out


def test_cuda_choices_follow_what_imports(monkeypatch):
    monkeypatch.setattr(common, "triton_kernels_importable", lambda: True)
    choices = dict(auto_choices(_CudaLike()))
    assert choices["mLSTM, causal (also flip-and-add, alternating)"] == "mlstm_kernels' chunkwise Triton kernels"
    assert choices["sLSTM, head dim <= 64"].startswith("dnax's Triton kernels")
    assert choices["sLSTM, head dim > 64"].startswith("the xlstm CUDA kernel")
    assert choices["Mamba"].startswith("dnax's Triton selective scan")
    assert choices["Caduceus (BiMamba, PH / PS)"].endswith("both directions in one call")
    assert choices["mLSTM, native bidirectional"].startswith("dnax's chunkwise PyTorch form")
    monkeypatch.setattr(common, "triton_kernels_importable", lambda: False)
    choices = dict(auto_choices(_CudaLike()))
    assert choices["Mamba"] == "dnax's chunked PyTorch selective scan"
    assert choices["sLSTM, head dim <= 64"].startswith("the xlstm CUDA kernel")


def test_cuda_without_a_gpu_is_one_line():
    done = subprocess.run([sys.executable, "-m", "dnax.backends", "--device", "cuda"], capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no CUDA GPU" in done.stderr

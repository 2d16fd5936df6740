"""Kernel tests run the Triton kernels on GPU when there is one, else in Triton's interpreter on CPU.

TRITON_INTERPRET must be set before the kernel modules are imported (triton.jit reads it at decoration time).
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

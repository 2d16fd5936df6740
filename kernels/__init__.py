"""Triton kernels of the dnax repository (a repository folder, not a published package: PyPI's `kernels` is
unrelated). Each kernel module ships its `<op>_ref` PyTorch reference beside the kernel; triton is imported only
here, never by `dnax` at import time."""

"""Triton kernels of the dnax repository (a repository folder, not a published package: PyPI's `kernels` is
unrelated): the native bidirectional mLSTM (with its quadratic PyTorch reference beside it), and the time loops of
the sLSTM recurrence and of Mamba's selective scan (their PyTorch forms and references are in
`dnax.models.layers.slstm` / `.selective_scan`, which call these kernels on request). `compile_check` lowers every
kernel for a GPU architecture without a GPU. triton is imported only here, never by `dnax` at import time."""

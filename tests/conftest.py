"""Test setup: the repository root is importable (experiments/, data_tools/, kernels/ are not installed packages),
dnax's cache goes to a per-session temporary folder, runs write under a temporary working directory, and without a
GPU Triton kernels run in Triton's interpreter (set before anything imports triton: it is read when kernels are
decorated, and some tests import libraries that import triton)."""
import os
import sys
from pathlib import Path

import pytest
import torch

from tests.local_http import http_server  # noqa: F401 (fixture)

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def _dnax_cache(tmp_path_factory):
    os.environ.setdefault("DNAX_CACHE", str(tmp_path_factory.mktemp("dnax_cache")))
    yield


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run inside an empty temporary directory (runs/ is created there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

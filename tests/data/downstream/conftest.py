"""Each test gets its own empty dnax cache, hub access switched off, and a fresh in-process task cache."""
from pathlib import Path

import pytest

from dnax.data.downstream import loading

FIXTURES = Path(__file__).parent / "fixtures"
# ../shared/data beside the checkout (as CI lays it out), else the workstation's copy
SHARED_DATA = next((p for p in (Path(__file__).resolve().parents[4] / "shared" / "data", Path("/work/shared/data"))
                    if p.is_dir()), Path(__file__).resolve().parents[4] / "shared" / "data")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DNAX_CACHE", str(tmp_path / "dnax_cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loading._load_cached.cache_clear()
    yield
    loading._load_cached.cache_clear()

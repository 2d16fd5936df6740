"""Where the reference conformance fixtures live: ../shared/conformance beside the checkout (as CI lays it out)."""
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = next((p for p in (_REPO.parent / "shared" / "conformance", Path("/work/shared/conformance"))
                    if p.is_dir()), _REPO.parent / "shared" / "conformance")

"""The machine a benchmark ran on, recorded beside every result, and the shared way results are written."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

from dnax.atomic import atomic_write_text


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def median_seconds(step: Callable[[], Any], reps: int, sync: Callable[[], Any] = lambda: None) -> float:
    """Median wall time of `reps` calls of `step`, each followed by `sync` (e.g. torch.cuda.synchronize)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def host() -> dict[str, Any]:
    """CPU model, core count, Python and the 1-minute load average when the benchmark starts."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "loadavg_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version()}


def write_result(result: dict[str, Any], out: str | os.PathLike, markdown: Callable[[dict], str],
                 t_start: float) -> None:
    """Record the end load and the run time in `result`, then write it as `out` (JSON) and `out` with `.md`
    (`markdown(result)`), each atomically."""
    result["host"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    result["total_seconds"] = round(time.perf_counter() - t_start, 1)
    out = Path(out)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')} ({result['total_seconds']} s)")

"""The machine a benchmark ran on, recorded beside every result, and the shared way results are written."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
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


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch, a length, a step or repetition count)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (e.g. warm-up steps)."""
    return _int_at_least(text, 0)


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """Stop with one argparse error line (exit status 2) when `device` is 'cuda' and torch sees no GPU."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error(f"--device cuda: no CUDA GPU is visible to torch {torch.__version__} on this machine")


def device_name(device: str) -> str:
    """The GPU's name for 'cuda', else the CPU model."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return cpu_model()


def none_ran(rows: list[dict], what: str) -> bool:
    """True, after one stderr line naming the first error, when every row holds an error (nothing worth writing).
    `what` names one row: 'configuration', 'point'."""
    errors = [r["error"] for r in rows if r.get("error")]
    if errors and len(errors) == len(rows):
        print(f"no {what} ran, nothing written; the first error: {errors[0]}", file=sys.stderr)
        return True
    return False


def failure_status(rows: list[dict], what: str) -> int:
    """A benchmark's exit status over its rows: 0, or 1 after one stderr line counting those that hold an error."""
    failed = sum(1 for r in rows if r.get("error"))
    if failed:
        print(f"{failed} of {len(rows)} {what}s failed (their rows hold the error)", file=sys.stderr)
    return 1 if failed else 0

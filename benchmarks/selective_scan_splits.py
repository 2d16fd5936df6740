"""The Triton selective scan walking the sequence in one piece or in time splits (`kernels.selective_scan`), on a GPU.

    python -m benchmarks.selective_scan_splits                       # Mamba / BiMamba at 2 x 32768, Mamba at 32 x 1024
    python -m benchmarks.selective_scan_splits --shape 1x256x131072x16x1

Each shape is BATCHxD_INNERxLENGTHxD_STATExGROUPS (groups 2: a BiMamba layer's two directions in one scan). For each,
forward + backward of `selective_scan(..., triton=True)` (Mamba's initialisation, see `selective_scan_cpu`) is timed
(median of --reps after one warm-up) with 1 split (one program per batch x group x channel block walks the whole
sequence), with `time_splits`' choice ("auto"), and with each --splits count; every result is compared with the
1-split one (max abs difference of the output and the input gradients). Results:
benchmarks/results/selective_scan_splits_<device>.{json,md}. `--device cpu` runs the kernels in Triton's interpreter
(TRITON_INTERPRET=1; for tests: tiny shapes only).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import torch

from benchmarks.machine import host, median_seconds, positive_int, write_result
from benchmarks.selective_scan_cpu import make_inputs

RESULTS = Path(__file__).parent / "results"
DEFAULT_SHAPES = ("2x256x32768x16x1", "2x256x32768x16x2", "32x256x1024x16x1")


def shape_arg(text: str) -> tuple[int, int, int, int, int]:
    """BATCHxD_INNERxLENGTHxD_STATExGROUPS, each >= 1, D_INNER a multiple of GROUPS."""
    if not re.fullmatch(r"\d+(x\d+){4}", text):
        raise argparse.ArgumentTypeError(f"expected BATCHxD_INNERxLENGTHxD_STATExGROUPS such as 2x256x32768x16x1, "
                                         f"got {text!r}")
    shape = tuple(int(x) for x in text.split("x"))
    if min(shape) < 1 or shape[1] % shape[4]:
        raise argparse.ArgumentTypeError(f"{text}: every size must be >= 1 and D_INNER a multiple of GROUPS")
    return shape  # type: ignore[return-value]


def _inputs(shape, device):
    batch, d_inner, length, d_state, groups = shape
    t = make_inputs(batch, d_inner, d_state, length)
    for name in ("B", "C"):  # (B, N, L) -> (B, G, N, L): one B / C per group
        t[name] = t[name].detach().unsqueeze(1).repeat(1, groups, 1, 1)
    return {k: v.detach().to(device).requires_grad_() for k, v in t.items()}


def _fwd_bwd(inputs, splits):
    """Output and gradients of one forward + backward with `splits` time splits (None: `time_splits`' choice)."""
    import kernels.selective_scan as kernel
    from dnax.models.layers.selective_scan import selective_scan

    chosen = kernel.time_splits
    if splits is not None:
        kernel.time_splits = lambda *args: splits
    try:
        for v in inputs.values():
            v.grad = None
        out = selective_scan(**inputs, delta_softplus=True, triton=True)
        out.sum().backward()
    finally:
        kernel.time_splits = chosen
    return [out.detach(), *(v.grad for v in inputs.values())]


def measure(shape, device, splits_list, reps):
    """One row per split setting: seconds (fwd + bwd), the split count used, max abs difference to 1 split."""
    import kernels.selective_scan as kernel
    from dnax.models.layers.selective_scan import TRITON_CHUNK_SIZE

    inputs = _inputs(shape, device)
    batch, d_inner, length, d_state, groups = shape
    grid, _ = kernel._launch(groups, d_inner // groups, d_state, batch * groups)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    one = _fwd_bwd(inputs, 1)
    rows = []
    for splits in [1, None, *splits_list]:
        wanted = kernel.time_splits(length, TRITON_CHUNK_SIZE, grid[0] * grid[1], device) if splits is None \
            else splits
        used, _ = kernel.split_layout(length, TRITON_CHUNK_SIZE, wanted)
        result = _fwd_bwd(inputs, splits)  # warm-up (compiles)
        diff = max((a - b).abs().max().item() for a, b in zip(result, one))
        seconds = median_seconds(lambda: _fwd_bwd(inputs, splits), reps, sync)
        rows.append(dict(shape="x".join(map(str, shape)), setting="auto" if splits is None else str(splits),
                         splits_wanted=wanted, splits=used, programs=grid[0] * grid[1] * used,
                         seconds=round(seconds, 5),
                         tokens_per_s=round(batch * length / seconds), max_abs_diff_vs_1=diff))
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup_vs_1"] = round(base / r["seconds"], 2)
    return rows


def markdown(result: dict) -> str:
    lines = [f"Triton selective scan, forward + backward, {result['device']}, torch {result['torch']}, "
             f"{result['date']}", "",
             "| batch x d_inner x length x d_state x groups | splits | programs | seconds | tokens/s | vs 1 split | "
             "max abs diff vs 1 split |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        label = f"auto ({r['splits']})" if r["setting"] == "auto" else r["setting"]
        lines.append(f"| {r['shape']} | {label} | {r['programs']} | {r['seconds']:.4f} | {r['tokens_per_s']:,} | "
                     f"{r['speedup_vs_1']:.2f}x | {r['max_abs_diff_vs_1']:.2g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.selective_scan_splits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=shape_arg, action="append", default=None,
                   help=f"BATCHxD_INNERxLENGTHxD_STATExGROUPS, repeatable (default: {', '.join(DEFAULT_SHAPES)})")
    p.add_argument("--splits", type=positive_int, action="append", default=[],
                   help="also time this many splits (repeatable)")
    p.add_argument("--reps", type=positive_int, default=5)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--out", default=None, help="path of the .json (and .md beside it); default: "
                   "benchmarks/results/selective_scan_splits_<device>.json")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU here (the kernels run on CPU only in Triton's interpreter: --device cpu "
                "with TRITON_INTERPRET=1)")
    if a.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        p.error("--device cpu needs TRITON_INTERPRET=1 (Triton's interpreter) set before Python starts")
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter)"
    out = Path(a.out) if a.out else RESULTS / f"selective_scan_splits_{re.sub(r'[^a-z0-9]+', '_', name.lower())}.json"
    t_start = time.perf_counter()
    shapes = a.shape or [shape_arg(s) for s in DEFAULT_SHAPES]
    rows = []
    for shape in shapes:
        new = measure(shape, device, a.splits, a.reps)
        print("\n".join(markdown(dict(device=name, torch=torch.__version__, date="", rows=new)).splitlines()[4:]),
              flush=True)
        rows += new
    result = dict(device=name, torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M:%S"), rows=rows,
                  host=host(), reps=a.reps)
    write_result(result, out, markdown, t_start)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

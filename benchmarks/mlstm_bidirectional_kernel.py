"""Native bidirectional mLSTM cell: forward+backward time, peak memory and TFLOP/s vs sequence length (GPU).

    python -m benchmarks.mlstm_bidirectional_kernel                       # S = 1k .. 128k, bf16, B*NH = 4*4, DH 128
    python -m benchmarks.mlstm_bidirectional_kernel --lengths 1024 32768 --dtype fp32

Rows per length: dnax's Triton kernel (`kernels/mlstm_bidirectional.py`), the quadratic reference form (what
DNA-xLSTM runs; until it runs out of memory), dnax's chunkwise PyTorch form, and for scale the causal Triton
kernel of mlstm_kernels (`chunkwise--triton_limit_chunk`) run twice (two directions, as flip-and-add would).
FLOPs counted as for attention: 4 S^2 DH per head forward, 3.5x that for forward+backward (the bidirectional
cell has a full S x S gate matrix; the causal kernel's useful work is half of it, counted the same way for
comparability). Configurations run one after another in one process (peak memory is reset between them and
inputs are freed; `--isolate` runs each in its own process instead).
Results: `benchmarks/results/mlstm_bidirectional_kernel_<gpu>.{json,md}`.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import median_seconds
from benchmarks.plots import two_panels
from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"
IMPLS = ("dnax_triton", "reference_quadratic", "dnax_chunkwise_pytorch", "mlstm_kernels_causal_x2")


def _fn(impl: str):
    if impl == "dnax_triton":
        from kernels.mlstm_bidirectional import mlstm_bidirectional

        return mlstm_bidirectional
    if impl == "reference_quadratic":
        from kernels.mlstm_bidirectional import mlstm_bidirectional_ref

        return mlstm_bidirectional_ref
    if impl == "dnax_chunkwise_pytorch":
        from dnax.models.layers.mlstm import mlstm_bidirectional_chunkwise

        return mlstm_bidirectional_chunkwise
    from mlstm_kernels.torch import get_mlstm_kernel

    causal = get_mlstm_kernel("chunkwise--triton_limit_chunk")

    def two_directions(q, k, v, i, f):
        fwd = causal(q, k, v, i, f, chunk_size=64)
        rev = causal(*(t.flip(-2) for t in (q, k, v)), i.flip(-1), f.flip(-1), chunk_size=64)
        return fwd + rev.flip(-2)

    return two_directions


def measure(impl: str, S: int, B: int, NH: int, DH: int, dtype: str, reps: int) -> dict:
    import torch

    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, NH, S, DH, device="cuda", dtype=dt, generator=g).requires_grad_() for _ in range(3))
    i, f = (torch.randn(B, NH, S, device="cuda", dtype=dt, generator=g).requires_grad_() for _ in range(2))
    dh = torch.randn(B, NH, S, DH, device="cuda", dtype=dt, generator=g)
    fn = _fn(impl)
    row = dict(impl=impl, S=S, B=B, NH=NH, DH=DH, dtype=dtype)
    try:
        fn(q, k, v, i, f).backward(dh)  # warm-up / compile
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ms = median_seconds(lambda: fn(q, k, v, i, f).backward(dh), reps, torch.cuda.synchronize) * 1e3
    except torch.OutOfMemoryError:
        return dict(row, error="out of memory")
    flops = 3.5 * 4 * S * S * DH * B * NH
    return dict(row, fwd_bwd_ms=round(ms, 3), peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3),
                tflops=round(flops / (ms * 1e-3) / 1e12, 2), reps=reps)


def _in_subprocess(impl: str, S: int, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.mlstm_bidirectional_kernel", "--single", "--impl", impl,
           "--lengths", str(S), "--batch", str(args.batch), "--heads", str(args.heads), "--head-dim",
           str(args.head_dim), "--dtype", args.dtype, "--reps", str(args.reps)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return dict(impl=impl, S=S, error=f"timeout {args.timeout}s")
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    return dict(impl=impl, S=S, error=(done.stderr.strip().splitlines() or ["failed"])[-1])


def plot(rows: list[dict], title: str, out: Path) -> None:
    """Forward+backward time and peak memory vs S, one line per implementation (log-log)."""
    series = {impl: [(r["S"], r["fwd_bwd_ms"], r["peak_mem_gib"]) for r in rows if r["impl"] == impl
                     and "fwd_bwd_ms" in r] for impl in dict.fromkeys(r["impl"] for r in rows)}
    two_panels(series, "sequence length S", ("forward + backward (ms)", "peak memory (GiB)"), title, out, log_y=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072])
    p.add_argument("--impl", choices=IMPLS, action="append")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--timeout", type=int, default=300, help="seconds per configuration (with --isolate)")
    p.add_argument("--isolate", action="store_true", help="one process per configuration")
    p.add_argument("--replot", type=Path, help="redraw the PNG of this results JSON and exit (no GPU needed)")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.replot:
        payload = json.loads(args.replot.read_text())
        env = payload["environment"]
        plot(payload["results"], f"Native bidirectional mLSTM cell, {env['gpu']}, B={env['B']} NH={env['NH']} "
             f"DH={env['DH']} {env['dtype']}, {env['date']}", args.replot.with_suffix(".png"))
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.mlstm_bidirectional_kernel needs a CUDA GPU (the kernel's CPU mode is "
                         "Triton's interpreter, for tests only)")
    if args.single:
        print(json.dumps(measure(args.impl[0], args.lengths[0], args.batch, args.heads, args.head_dim, args.dtype,
                                 args.reps)))
        return
    rows, skip = [], set()
    for S in args.lengths:
        for impl in args.impl or IMPLS:
            if impl in skip:  # ran out of memory at a shorter length
                rows.append(dict(impl=impl, S=S, error="out of memory (at a shorter length)"))
                continue
            if args.isolate:
                row = _in_subprocess(impl, S, args)
            else:
                try:
                    row = measure(impl, S, args.batch, args.heads, args.head_dim, args.dtype, args.reps)
                except Exception as e:  # noqa: BLE001 - recorded in the table, the other rows still run
                    row = dict(impl=impl, S=S, error=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
                gc.collect()
                torch.cuda.empty_cache()
            if "out of memory" in row.get("error", ""):
                skip.add(impl)
            rows.append(row)
            print(json.dumps(row), flush=True)
    gpu = torch.cuda.get_device_name()
    env = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), gpu=gpu, torch=torch.__version__,
               triton=__import__("triton").__version__, B=args.batch, NH=args.heads, DH=args.head_dim,
               dtype=args.dtype)
    lines = [f"Native bidirectional mLSTM cell, forward+backward, {gpu}, torch {env['torch']}, triton "
             f"{env['triton']}, B={args.batch} NH={args.heads} DH={args.head_dim} {args.dtype}, {env['date']}", "",
             "TFLOP/s counts the quadratic form's work (3.5 x 4 S^2 DH per head) for every row: for the linear-time "
             "rows (chunkwise, mlstm_kernels) it is an equivalent rate and can exceed the GPU's peak.", "",
             "| S | implementation | fwd+bwd (ms) | peak memory (GiB) | TFLOP/s |", "|---:|---|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['S']} | {r['impl']} | {r['error']} | | |")
        else:
            lines.append(f"| {r['S']} | {r['impl']} | {r['fwd_bwd_ms']} | {r['peak_mem_gib']} | {r['tflops']} |")
    stem = "mlstm_bidirectional_kernel_" + gpu.lower().replace(" ", "_").replace("/", "_")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps({"environment": env, "results": rows}, indent=2))
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + f"\n\n![plot]({stem}.png)\n")
    plot(rows, lines[0], RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.md")


if __name__ == "__main__":
    main()

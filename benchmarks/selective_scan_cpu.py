"""Selective scan (Mamba-1 S6) forward+backward time on CPU: mamba_ssm's `selective_scan_ref` vs dnax's chunked scan.

    python -m benchmarks.selective_scan_cpu                 # batch 4, d_inner 256, d_state 16, L 1024
    python -m benchmarks.selective_scan_cpu --reps 7 --chunk-size 64
    python -m benchmarks.selective_scan_cpu --threads 1     # on busy shared cores (2 threads then thrash)

Shape: the Caduceus/Mamba layer of the reference (d_model 128, expand 2 -> d_inner 256, d_state 16) on batch 4 x
1024; one BiMamba layer runs two such scans. Inputs follow Mamba's initialisation (A = -[1..N], delta through
softplus with dt in [1e-3, 1e-1], variable B and C, D, z). The reference loops over time steps and is slow, so it is
timed with ONE repetition (after no warm-up); dnax is timed with a warm-up and the median of --reps, once with
contiguous (B, D, L) inputs and once with the same values laid out as the Mamba layer passes them ((B, D, L) views
of (B, L, D) tensors). Results go to benchmarks/results/selective_scan_cpu.{json,md} with the load average (shared
cores: numbers are noisy).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch

from benchmarks.machine import cpu_model, positive_int
from dnax.atomic import atomic_write_text
from dnax.models.layers.selective_scan import DEFAULT_CHUNK_SIZE, selective_scan

RESULTS = Path(__file__).parent / "results"


def make_inputs(batch, d_inner, d_state, length, seed=0, layer_layout=False):
    g = torch.Generator().manual_seed(seed)
    dt = torch.exp(torch.rand(d_inner, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    dt_bias = dt + torch.log(-torch.expm1(-dt))  # inverse softplus, as Mamba
    t = dict(
        u=torch.randn(batch, d_inner, length, generator=g),
        delta=0.1 * torch.randn(batch, d_inner, length, generator=g),
        A=-torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1),
        B=torch.randn(batch, d_state, length, generator=g),
        C=torch.randn(batch, d_state, length, generator=g),
        D=torch.ones(d_inner),
        z=torch.randn(batch, d_inner, length, generator=g),
        delta_bias=dt_bias,
    )
    if layer_layout:  # same values; (B, D, L) / (B, N, L) views of (B, L, D) / (B, L, N) memory
        t = {k: (v.transpose(1, 2).contiguous().transpose(1, 2) if v.dim() == 3 else v) for k, v in t.items()}
    return {k: v.requires_grad_() for k, v in t.items()}


def fwd_bwd(fn, inputs, **kw):
    for v in inputs.values():
        v.grad = None
    t0 = time.perf_counter()
    out = fn(**inputs, delta_softplus=True, **kw)
    t1 = time.perf_counter()
    out.sum().backward()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.selective_scan_cpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=positive_int, default=4)
    p.add_argument("--d-inner", type=positive_int, default=256)
    p.add_argument("--d-state", type=positive_int, default=16)
    p.add_argument("--length", type=positive_int, default=1024)
    p.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE)
    p.add_argument("--reps", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--skip-ref", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "selective_scan_cpu"), help="path stem of the .json and .md")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    shape = (a.batch, a.d_inner, a.d_state, a.length)
    load_before = os.getloadavg()
    timings = {}
    for layout in ("contiguous", "layer"):
        layout_inputs = make_inputs(*shape, layer_layout=layout == "layer")
        fwd_bwd(selective_scan, layout_inputs, chunk_size=a.chunk_size)  # warm-up
        runs = [fwd_bwd(selective_scan, layout_inputs, chunk_size=a.chunk_size) for _ in range(a.reps)]
        timings[layout] = dict(fwd_s=statistics.median(r[0] for r in runs), bwd_s=statistics.median(r[1] for r in runs),
                               total_s=statistics.median(sum(r) for r in runs), min_total_s=min(sum(r) for r in runs))
        if layout == "contiguous":
            inputs, dnax_grads = layout_inputs, {k: v.grad.clone() for k, v in layout_inputs.items()}
    dnax = timings["contiguous"]
    res = dict(shape=dict(batch=a.batch, d_inner=a.d_inner, d_state=a.d_state, length=a.length),
               chunk_size=a.chunk_size, dnax=dnax, dnax_layer_layout=timings["layer"], dnax_reps=a.reps,
               torch=torch.__version__, threads=torch.get_num_threads(), cpu=cpu_model())
    if not a.skip_ref:
        if importlib.util.find_spec("selective_scan_cuda") is None:
            sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
        from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
        f, b = fwd_bwd(selective_scan_ref, inputs)
        res["ref"] = dict(fwd_s=f, bwd_s=b, total_s=f + b, reps=1, note="1 repetition, no warm-up (slow)")
        res["max_abs_grad_diff"] = {k: float((v.grad - dnax_grads[k]).abs().max()) for k, v in inputs.items()}
        res["speedup_fwd_bwd"] = res["ref"]["total_s"] / dnax["total_s"]
        res["speedup_bimamba_layer_note"] = "one BiMamba layer = 2 scans: per-layer time is 2x both, speed-up the same"
    res["loadavg_before"] = load_before
    res["loadavg_after"] = os.getloadavg()

    out = Path(a.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    s = res["shape"]
    lines = [f"# Selective scan, CPU, forward+backward (batch {s['batch']}, d_inner {s['d_inner']}, "
             f"d_state {s['d_state']}, L {s['length']})", "",
             "| impl | fwd s | bwd s | fwd+bwd s | reps |", "|---|---|---|---|---|",
             *(f"| dnax, {name} (T={a.chunk_size}) | {t['fwd_s']:.3f} | {t['bwd_s']:.3f} | {t['total_s']:.3f} | "
               f"median of {a.reps} |" for name, t in (("(B, D, L) contiguous", dnax),
                                                      ("Mamba-layer layout", timings["layer"])))]
    if "ref" in res:
        r = res["ref"]
        lines.append(f"| mamba_ssm selective_scan_ref | {r['fwd_s']:.3f} | {r['bwd_s']:.3f} | {r['total_s']:.3f} | "
                     "1 (slow; no warm-up) |")
        lines += ["", f"Speed-up (fwd+bwd): **{res['speedup_fwd_bwd']:.0f}x**. One BiMamba layer runs two scans."]
    lines += ["", f"Load average before/after: {tuple(round(x, 2) for x in load_before)} / "
              f"{tuple(round(x, 2) for x in res['loadavg_after'])} (shared cores), {res['cpu']}, "
              f"torch {torch.__version__}, torch threads: {res['threads']}."]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return res


if __name__ == "__main__":
    main()

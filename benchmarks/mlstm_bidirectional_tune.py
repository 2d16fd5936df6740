"""Tune the launch configuration (tile sizes, warps, pipeline stages) of the native bidirectional mLSTM kernels.

    python -m benchmarks.mlstm_bidirectional_tune                    # bf16, head dims 64 and 128, S = 8192
    python -m benchmarks.mlstm_bidirectional_tune --head-dims 128 --length 4096

Each of the three kernels (forward; backward over queries; backward over keys) is timed alone with
`triton.testing.do_bench` for every candidate, on the inputs a real forward produces. The fastest candidate per
(GPU architecture, dtype, head dim, kernel) is merged into `kernels/mlstm_bidirectional_tuned.json`, which
`kernels.mlstm_bidirectional.launch_config` reads; all timings go to
`benchmarks/results/mlstm_bidirectional_tune_<gpu>.{json,md}`. Candidates that do not fit the GPU's shared memory or
registers are recorded as failed, not chosen.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"
#: (BLOCK_T, BLOCK_S, num_warps, num_stages); the first is the untuned default for head dim 128
CANDIDATES = {
    "fwd": [(32, 32, 4, 2), (64, 32, 4, 2), (64, 64, 4, 2), (64, 64, 4, 3), (128, 32, 8, 2), (128, 64, 8, 2),
            (128, 64, 8, 3)],
    "bwd_q": [(32, 32, 4, 2), (64, 32, 4, 2), (64, 64, 4, 2), (64, 64, 8, 2), (128, 32, 8, 2), (128, 64, 8, 2),
              (64, 32, 4, 3)],
    "bwd_kv": [(32, 32, 4, 2), (32, 64, 4, 2), (64, 64, 4, 2), (64, 64, 8, 2), (32, 128, 8, 2), (64, 128, 8, 2),
               (32, 64, 4, 3)],
}


def _inputs(X: int, S: int, DH: int, dtype, device: str = "cuda"):
    import torch
    import torch.nn.functional as F

    from kernels import mlstm_bidirectional as kb

    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(X, S, DH, device=device, dtype=dtype, generator=g) for _ in range(3))
    i = torch.randn(X, S, device=device, generator=g)
    lf = F.logsigmoid(torch.randn(X, S, device=device, generator=g) + 3.0)
    b = lf.cumsum(-1)
    x = b - lf
    h = torch.empty_like(q)
    m, n, den = (torch.empty(X, S, device=device) for _ in range(3))
    arg = torch.empty(X, S, device=device, dtype=torch.int32)
    cfg = kb.launch_config(S, DH, q, "fwd")
    kb._fwd_kernel[(kb.triton.cdiv(S, cfg["BLOCK_T"]), X)](q, k, v, b, x, i, h, m, n, den, arg, S, DH, DH**-0.5,
                                                            kb.EPS, IEEE=False, **cfg)
    dnum, dden = torch.randn(X, S, DH, device=device, generator=g), torch.randn(X, S, device=device, generator=g)
    out = {name: torch.empty(X, S, DH, device=device) for name in ("dq", "dk", "dv")}
    sums = {name: torch.empty(X, S, device=device) for name in ("rows_lo", "rows_up", "cols_lo", "cols_up")}
    return dict(q=q, k=k, v=v, b=b, x=x, i=i, h=h, m=m, n=n, den=den, arg=arg, dnum=dnum, dden=dden, **out, **sums)


def _launch(phase: str, t: dict, S: int, DH: int, cand: tuple[int, int, int, int]):
    from kernels import mlstm_bidirectional as kb

    bt, bs, warps, stages = cand
    cfg = dict(BLOCK_T=bt, BLOCK_S=bs, BLOCK_D=max(16, kb.triton.next_power_of_2(DH)), num_warps=warps,
               num_stages=stages, IEEE=False)
    X, scale, cdiv = t["q"].shape[0], DH**-0.5, kb.triton.cdiv
    if phase == "fwd":
        return lambda: kb._fwd_kernel[(cdiv(S, bt), X)](t["q"], t["k"], t["v"], t["b"], t["x"], t["i"], t["h"],
                                                         t["m"], t["n"], t["den"], t["arg"], S, DH, scale, kb.EPS,
                                                         **cfg)
    if phase == "bwd_q":
        return lambda: kb._bwd_q_kernel[(cdiv(S, bt), X)](t["q"], t["k"], t["v"], t["b"], t["x"], t["i"], t["m"],
                                                           t["dnum"], t["dden"], t["dq"], t["rows_lo"],
                                                           t["rows_up"], S, DH, scale, **cfg)
    return lambda: kb._bwd_kv_kernel[(cdiv(S, bs), X)](t["q"], t["k"], t["v"], t["b"], t["x"], t["i"], t["m"],
                                                        t["dnum"], t["dden"], t["dk"], t["dv"], t["cols_lo"],
                                                        t["cols_up"], S, DH, scale, **cfg)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--head-dims", type=int, nargs="+", default=[128, 64])
    p.add_argument("--length", type=int, default=8192)
    p.add_argument("--rows", type=int, default=16, help="batch x heads")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    p.add_argument("--table", type=Path, default=None, help="default: kernels/mlstm_bidirectional_tuned.json")
    args = p.parse_args(argv)
    import torch
    import triton
    from triton.testing import do_bench

    from kernels import mlstm_bidirectional as kb

    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.mlstm_bidirectional_tune needs a CUDA GPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    major, minor = torch.cuda.get_device_capability()
    arch, gpu = f"sm{major}{minor}", torch.cuda.get_device_name()
    table_path = args.table or kb.TUNED_PATH
    table = json.loads(table_path.read_text()) if table_path.exists() else {}
    rows = []
    for DH in args.head_dims:
        t = _inputs(args.rows, args.length, DH, dtype)
        for phase in kb.PHASES:
            best = None
            for cand in CANDIDATES[phase]:
                row = dict(head_dim=DH, phase=phase, config=list(cand))
                try:
                    row["ms"] = round(do_bench(_launch(phase, t, args.length, DH, cand), warmup=5, rep=30), 4)
                except Exception as e:  # noqa: BLE001 - out of resources / compile failure: recorded, not chosen
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                rows.append(row)
                print(json.dumps(row), flush=True)
                if "ms" in row and (best is None or row["ms"] < best["ms"]):
                    best = row
            if best is not None:
                block_d = str(max(16, triton.next_power_of_2(DH)))
                table.setdefault(arch, {}).setdefault(args.dtype, {}).setdefault(block_d, {})[phase] = best["config"]
        del t
        torch.cuda.empty_cache()
    atomic_write_text(table_path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    env = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), gpu=gpu, arch=arch, torch=torch.__version__,
               triton=triton.__version__, S=args.length, rows=args.rows, dtype=args.dtype)
    lines = [f"mLSTM bidirectional kernel launch configurations, {gpu} ({arch}), torch {env['torch']}, triton "
             f"{env['triton']}, S={args.length}, batch x heads={args.rows}, {args.dtype}, {env['date']}", "",
             "(BLOCK_T, BLOCK_S, warps, stages); the fastest per head dim and kernel is marked *", "",
             "| head dim | kernel | config | time (ms) |", "|---:|---|---|---:|"]
    chosen = {(DH, ph): table.get(arch, {}).get(args.dtype, {}).get(str(max(16, triton.next_power_of_2(DH))), {}).get(ph)
              for DH in args.head_dims for ph in kb.PHASES}
    for r in rows:
        mark = " *" if chosen.get((r["head_dim"], r["phase"])) == r["config"] and "ms" in r else ""
        lines.append(f"| {r['head_dim']} | {r['phase']} | {tuple(r['config'])}{mark} | {r.get('ms', r.get('error'))} |")
    stem = "mlstm_bidirectional_tune_" + gpu.lower().replace(" ", "_").replace("/", "_")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps({"environment": env, "results": rows}, indent=1))
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"wrote {table_path} and {RESULTS / stem}.md")


if __name__ == "__main__":
    main()

"""Train-step tokens/s and peak memory vs context length, with a plot.

    python -m benchmarks.context_scaling                                   # CPU: 1k .. 32k, 32,768 tokens per step
    python -m benchmarks.context_scaling --size backbones                  # the other backbones, same lengths
    python -m benchmarks.context_scaling --device cuda --dtype bf16 --tokens 131072 --lengths 1024 8192 32768

Each point is `benchmarks.train_step` (forward, loss, backward, AdamW, clipping; its own process, so peak memory
is its own) at batch = tokens // length, so every length trains the same number of tokens per step. Model sets:
`500k` (default) and `2m`: causal, flip-and-add and native bidirectional mLSTM of the DNA-xLSTM 500k / 2M model;
`backbones`: Mamba, Mamba2, Caduceus-PH/PS, Transformer++ and HyenaDNA as their hg38 experiments build them, at
the context length of each point. Results: `benchmarks/results/context_scaling_<device>.{json,md,png}` (500k),
`context_scaling_<size>_<device>.*` (other sets; `--out-dir` for another folder); `--replot` redraws from the JSON.
Exit status 1 when a point failed (its row holds the error; nothing is written when none ran).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.machine import check_device, device_name, failure_status, none_ran, positive_int
from benchmarks.plots import two_panels
from benchmarks.train_step import run_config
from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"
MODES = {"500k": ["causal", "flip_add", "native_bidirectional"],
         "2m": ["xlstm_2m_clm", "xlstm_2m_flip_add", "xlstm_2m_native"],
         "backbones": ["mamba", "mamba2", "caduceus_ph", "caduceus_ps", "transformer_pp", "hyena"]}
TITLES = {"500k": "xLSTM train step vs context length, 500k model", "2m": "xLSTM train step vs context length, 2M model",
          "backbones": "Train step vs context length, hg38 backbones"}


def plot(rows: list[dict], title: str, out: Path) -> None:
    series = {mode: [(r["length"], r["tokens_per_s"], r["peak_mem_gib"]) for r in rows
                     if r["mode"] == mode and r.get("tokens_per_s")] for mode in dict.fromkeys(r["mode"] for r in rows)}
    two_panels(series, "context length", ("tokens/s", f"peak memory (GiB, {rows[0].get('peak_mem_kind', '')})"),
               title, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.context_scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--size", default="500k", choices=list(MODES))
    p.add_argument("--lengths", type=positive_int, nargs="+", default=[1024, 4096, 16384, 32768])
    p.add_argument("--tokens", type=positive_int, default=32768,
                   help="tokens per step (batch = tokens // length, at least 1)")
    p.add_argument("--steps", type=positive_int, default=2)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--replot", action="store_true", help="redraw the PNG from the JSON only")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder of the results (default: %(default)s)")
    args = p.parse_args(argv)
    stem = args.out_dir / ("context_scaling_" + ("" if args.size == "500k" else f"{args.size}_") + args.device)
    if args.replot:
        if not stem.with_suffix(".json").is_file():
            p.error(f"--replot: no results to redraw at {stem.with_suffix('.json')}")
        payload = json.loads(stem.with_suffix(".json").read_text())
        plot(payload["results"], payload["title"], stem.with_suffix(".png"))
        return 0
    check_device(p, args.device)
    rows = []
    for length in args.lengths:
        for mode in MODES[args.size]:
            row = run_config(mode, False, args.device, args.dtype, max(1, args.tokens // length), length, args.steps,
                             timeout=args.timeout)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if none_ran(rows, "point"):
        return 1
    import torch

    device = device_name(args.device)
    title = (f"{TITLES[args.size]}, {args.tokens:,} tokens/step, {args.dtype}, "
             f"{device}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    lines = [title, "", "| length | mode | parameters | batch | tokens/s | peak memory (GiB) | load |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        tps = f"{r['tokens_per_s']:,}" if not r.get("error") else f"error: {r['error'][:80]}"
        params = f"{r['params']:,}" if "params" in r else ""
        lines.append(f"| {r['length']} | {r['mode']} | {params} | {r['batch']} | {tps} | {r['peak_mem_gib']} | "
                     f"{r['load_avg_1min']} |")
    atomic_write_text(stem.with_suffix(".json"), json.dumps({"title": title, "results": rows}, indent=1) + "\n")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + f"\n\n![plot]({stem.name}.png)\n")
    plot(rows, title, stem.with_suffix(".png"))
    print("\n".join(lines))
    return failure_status(rows, "point")


if __name__ == "__main__":
    sys.exit(main())

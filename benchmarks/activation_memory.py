"""Activation memory of a train step, counted on any device: the bytes autograd keeps for backward.

    python -m benchmarks.activation_memory                          # the 32k native-bidirectional anchor configs
    python -m benchmarks.activation_memory --mode xlstm_2m_clm --length 4096 --target 4x32768

One forward at `--batch x --length` under bf16 autocast (CPU autocast mirrors CUDA's dtype rules) with a
`saved_tensors_hooks` tap that records each saved activation's storage once (parameters excluded), then scaled
linearly to `--target` tokens: the dominant term of a GPU step's peak memory, without a GPU (on an H100 the
plain native-bidirectional chunkwise 2M model counted 27.9 GiB here before the bf16 layer fixes against 28.5 GiB
peak measured there). Not counted: parameters, gradients, optimizer state (a few MiB for these models) and what a
backward holds transiently (e.g. one recomputed cell). Results: `benchmarks/results/activation_memory.{json,md}`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.train_step import ALL_MODES, build_model
from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"
DEFAULT_CASES = [("xlstm_2m_native", "chunkwise"), ("xlstm_2m_native_recompute", "chunkwise"),
                 ("xlstm_2m_clm", "chunkwise"), ("xlstm_2m_flip_add", "chunkwise")]


def saved_bytes(mode: str, m_backend: str | None, batch: int, length: int, dtype: str) -> int:
    import torch

    model = build_model(mode, False, length, m_backend)
    ids = torch.randint(7, 11, (batch, length))
    saved: dict[int, int] = {}

    def pack(t):
        if not (t.is_leaf and t.requires_grad):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            model(ids)
    return sum(saved.values())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=ALL_MODES, action="append")
    p.add_argument("--m-backend", default="chunkwise")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--target", default="4x32768", help="B x S to scale to")
    args = p.parse_args(argv)
    tb, ts = (int(v) for v in args.target.lower().split("x"))
    cases = [(m, args.m_backend) for m in args.mode] if args.mode else DEFAULT_CASES
    rows = []
    for mode, backend in cases:
        n = saved_bytes(mode, backend, args.batch, args.length, args.dtype)
        per_token = n / (args.batch * args.length)
        rows.append(dict(mode=mode, m_backend=backend, dtype=args.dtype, measured_at=f"{args.batch}x{args.length}",
                         saved_mib=round(n / 2**20, 1), bytes_per_token=round(per_token),
                         target=args.target, target_gib=round(per_token * tb * ts / 2**30, 2)))
        print(json.dumps(rows[-1]), flush=True)
    lines = [f"Saved activations of one forward (autograd's saved tensors, each storage once), {args.dtype} autocast, "
             f"{time.strftime('%Y-%m-%d')}, scaled linearly to {args.target}", "",
             f"| mode | mLSTM backend | measured at | bytes per token | at {args.target} (GiB) |",
             "|---|---|---|---:|---:|"]
    lines += [f"| {r['mode']} | {r['m_backend']} | {r['measured_at']} | {r['bytes_per_token']:,} | {r['target_gib']} |"
              for r in rows]
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "activation_memory.json", json.dumps(rows, indent=1) + "\n")
    atomic_write_text(RESULTS / "activation_memory.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Activation memory of a train step, counted on any device: the bytes autograd keeps for backward.

    python -m benchmarks.activation_memory                          # the 32k native-bidirectional anchor configs
    python -m benchmarks.activation_memory --mode xlstm_2m_clm --length 4096 --target 4x32768

One forward at `--batch x --length` under bf16 autocast (CPU autocast mirrors CUDA's dtype rules) with a
`saved_tensors_hooks` tap that records each saved activation's storage once (parameters excluded), then scaled
linearly to `--target` tokens: the dominant term of a GPU step's peak memory, without a GPU (on an H100 the
plain native-bidirectional chunkwise 2M model counted 27.9 GiB here before the bf16 layer fixes against 28.5 GiB
peak measured there). Not counted: parameters, gradients, optimizer state (a few MiB for these models) and what a
backward holds transiently (e.g. one recomputed cell). Results: `benchmarks/results/activation_memory.{json,md}`
(`--out-dir` for another folder).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from benchmarks.machine import cpu_model, positive_int
from benchmarks.train_step import ALL_MODES, XLSTM_2M, build_model
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


def batch_by_length(text: str) -> tuple[int, int]:
    """argparse type: 'BxS' (e.g. 4x32768), both >= 1."""
    try:
        b, s = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BATCHxLENGTH such as 4x32768, got {text!r}") from None
    if b < 1 or s < 1:
        raise argparse.ArgumentTypeError(f"batch and length must be >= 1, got {text!r}")
    return b, s


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.activation_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=ALL_MODES, action="append")
    p.add_argument("--m-backend", default="chunkwise", choices=["parallel", "chunkwise", "kernel", "auto"],
                   help="mLSTM backend of the xlstm_2m_* modes (the other modes run their own default)")
    p.add_argument("--batch", type=positive_int, default=1)
    p.add_argument("--length", type=positive_int, default=4096)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--target", default="4x32768", type=batch_by_length, help="B x S to scale to")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder of the results (default: %(default)s)")
    args = p.parse_args(argv)
    (tb, ts), target = args.target, "x".join(map(str, args.target))
    # build_model applies an mLSTM backend to the xlstm_2m_* modes only: the others are labelled with none
    cases = ([(m, args.m_backend if m in XLSTM_2M else None) for m in args.mode] if args.mode
             else DEFAULT_CASES)
    rows = []
    for mode, backend in cases:
        n = saved_bytes(mode, backend, args.batch, args.length, args.dtype)
        per_token = n / (args.batch * args.length)
        rows.append(dict(mode=mode, m_backend=backend, dtype=args.dtype, measured_at=f"{args.batch}x{args.length}",
                         saved_mib=round(n / 2**20, 1), bytes_per_token=round(per_token),
                         target=target, target_gib=round(per_token * tb * ts / 2**30, 2)))
        print(json.dumps(rows[-1]), flush=True)
    import torch

    machine = f"{cpu_model()}, torch {torch.__version__}, Python {platform.python_version()}"
    lines = [f"Saved activations of one forward (autograd's saved tensors, each storage once), {args.dtype} autocast, "
             f"{time.strftime('%Y-%m-%d')}, scaled linearly to {target}; counted on {machine}", "",
             f"| mode | mLSTM backend | measured at | bytes per token | at {target} (GiB) |",
             "|---|---|---|---:|---:|"]
    lines += [f"| {r['mode']} | {r['m_backend'] or '-'} | {r['measured_at']} | {r['bytes_per_token']:,} | "
              f"{r['target_gib']} |" for r in rows]
    for r in rows:
        r["machine"] = machine
    atomic_write_text(args.out_dir / "activation_memory.json", json.dumps(rows, indent=1) + "\n")
    atomic_write_text(args.out_dir / "activation_memory.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

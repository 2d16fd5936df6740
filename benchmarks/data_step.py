"""Per-batch data work of MLM pretraining on the device: RC augmentation (keyed flips) + keyed MLM masking.

    python -m benchmarks.data_step                                # CPU, 128 x 1024
    python -m benchmarks.data_step --device cuda --batch 128 --length 1024

Times `random_reverse_complement` + `MaskedLM(train_seed=...)` on one batch shaped like the pretraining loader's
(int64 ids and window keys), the median of `--reps` after a warm-up, and prints it beside the tokens/s it would
cap a train step at. This is the work issue 7 suggests fusing into one kernel; the numbers say whether it matters.
Results: `benchmarks/results/data_step_<device>.{json,md}` (`--out-dir` for another folder).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.machine import check_device, device_name, median_seconds, positive_int
from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"


def measure(device: str, batch: int, length: int, reps: int) -> dict:
    import torch

    from dnax.algorithms.reverse_complement import random_reverse_complement
    from dnax.models.objectives import MaskedLM, sample_keys

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(7, 11, (batch, length), generator=g).to(device)
    keys = {"chrom_index": torch.randint(0, 24, (batch,), generator=g).to(device),
            "start": torch.randint(0, 10**8, (batch,), generator=g).to(device),
            "epoch": torch.zeros(batch, dtype=torch.int64, device=device)}
    objective = MaskedLM(train_seed=0)
    window = sample_keys(keys)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():  # what the RC algorithm and the MLM objective run per training batch
        flipped, _ = random_reverse_complement(ids, keys=window, seed=0)
        return objective({"input_ids": flipped, **keys}, training=True)

    step()
    sync()
    ms = median_seconds(step, reps, sync) * 1e3
    return dict(device=device_name(device), batch=batch, length=length,
                reps=reps, ms=round(ms, 3), tokens_per_s_cap=round(batch * length / (ms * 1e-3)),
                torch=torch.__version__, threads=torch.get_num_threads())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.data_step", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=positive_int, default=128)
    p.add_argument("--length", type=positive_int, default=1024)
    p.add_argument("--reps", type=positive_int, default=20)
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder of the results (default: %(default)s)")
    args = p.parse_args(argv)
    check_device(p, args.device)
    row = measure(args.device, args.batch, args.length, args.reps)
    print(json.dumps(row))
    md = (f"MLM data step (keyed RC flips + keyed masking), {row['device']}, torch {row['torch']}, "
          f"{row['threads']} threads\n\n| batch x length | ms per batch | caps a train step at (tokens/s) |\n"
          f"|---|---:|---:|\n| {row['batch']} x {row['length']} | {row['ms']} | {row['tokens_per_s_cap']:,} |\n")
    atomic_write_text(args.out_dir / f"data_step_{args.device}.json", json.dumps(row, indent=1) + "\n")
    atomic_write_text(args.out_dir / f"data_step_{args.device}.md", md)
    print(md)


if __name__ == "__main__":
    main()

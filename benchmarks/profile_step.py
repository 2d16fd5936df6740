"""Where a train step's time goes: torch.profiler over one step (after warm-up), top operators by device time.

    python -m benchmarks.profile_step --mode xlstm_2m_clm --batch 128 --length 1024          # GPU, bf16
    python -m benchmarks.profile_step --mode causal --device cpu --batch 4 --length 1024 --dtype fp32

The step is `benchmarks.train_step`'s (forward, cross-entropy, backward, AdamW, grad clip). The table goes to
stdout and to `benchmarks/results/profile_<mode>_<batch>x<length>_<device>.txt`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.train_step import ALL_MODES, build_model
from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=ALL_MODES, required=True)
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--m-backend", default=None)
    p.add_argument("--rows", type=int, default=30)
    args = p.parse_args(argv)
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build_model(args.mode, False, args.length, args.m_backend).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(7, 11, (args.batch, args.length), device=args.device)
    autocast = torch.autocast(device_type=args.device, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = model(ids)
        F.cross_entropy(logits.float().flatten(0, 1), ids.flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        if args.device == "cuda":
            torch.cuda.synchronize()
    key = "device_time_total" if args.device == "cuda" else "self_cpu_time_total"
    title = (f"{args.mode} {args.batch} x {args.length} {args.dtype} on "
             f"{torch.cuda.get_device_name() if args.device == 'cuda' else args.device}, torch {torch.__version__}")
    table = prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=70)
    print(title + "\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"profile_{args.mode}_{args.batch}x{args.length}_{args.device}.txt",
                      title + "\n" + table + "\n")


if __name__ == "__main__":
    main()

"""DDP scaling on this machine's CPUs: training tokens/s of the xLSTM recipe with 1 and 2 processes (gloo).

    python -m benchmarks.ddp_scaling                       # 1 vs 2 processes, results/ddp_scaling_cpu.{json,md}
    python -m benchmarks.ddp_scaling --steps 8 --global-batch 8 --seq-len 1024

Each configuration is `dnax-launch -n P -m benchmarks.ddp_scaling --worker ...`: the `hg38_xlstm` MLM recipe on the
bundled sample (the `sample` fiddler: CPU fp32, the paper's d_model 128 model) at a fixed global batch (the same
windows per step at every P), no evaluation or checkpoints. A step's time is between consecutive `BATCH_END`s on rank
0 (data, forward, backward, gradient all-reduce, AdamW); the first `--warmup` steps are dropped and the median of the
rest is reported. Each process gets `cores // P` intra-op threads (OMP_NUM_THREADS), so the cores are never
oversubscribed; the load average is recorded beside every number (the cores may be shared).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_model
from dnax.atomic import atomic_write_text

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def worker(out: str, steps: int, global_batch: int, seq_len: int) -> None:
    """One process of a launched run: train, then rank 0 writes its step times to `out`."""
    import fiddle as fdl
    from composer.core import Callback
    from composer.utils import dist

    from dnax import run as cli

    class StepClock(Callback):
        def __init__(self):
            self.times: list[float] = []

        def batch_end(self, state, logger):
            self.times.append(time.perf_counter())

    fn, module = cli.resolve_experiment("experiments.hg38_xlstm")
    cfg = fn()
    cli.mutate(cfg, ["sample", f"seq_len({seq_len})", f"global_batch({global_batch})", f"steps({steps})",
                     "eval_dataloader=None", "trainer.save_folder=None", "trainer.autoresume=False",
                     "trainer.run_name='ddp_scaling'", "trainer.progress_bar=False"], module)
    clock = StepClock()
    built = fdl.build(cfg)
    trainer_factory = built.keywords["trainer"]
    callbacks = [*trainer_factory.keywords.get("callbacks", []), clock]
    built.keywords["trainer"] = lambda **kw: trainer_factory(**kw, callbacks=callbacks)
    built()
    if dist.get_global_rank() == 0:
        atomic_write_text(out, json.dumps({"step_ends": clock.times}))


def measure(nproc: int, steps: int, warmup: int, global_batch: int, seq_len: int, cores: int) -> dict:
    out = Path(f"/tmp/ddp_scaling_{os.getpid()}_{nproc}.json")
    threads = max(1, cores // nproc)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "dnax.launch", "-n", str(nproc), "-m", "benchmarks.ddp_scaling", "--worker",
           str(out), "--steps", str(steps), "--global-batch", str(global_batch), "--seq-len", str(seq_len)]
    load_start = os.getloadavg()[0]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd="/tmp")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    ends = json.loads(out.read_text())["step_ends"]
    out.unlink()
    step_times = [b - a for a, b in zip(ends, ends[1:])][warmup:]
    step = statistics.median(step_times)
    return dict(processes=nproc, threads_per_process=threads, global_batch=global_batch, seq_len=seq_len,
                steps_timed=len(step_times), step_s_median=round(step, 4),
                step_s_all=[round(t, 4) for t in step_times], tokens_per_s=round(global_batch * seq_len / step),
                load_avg_1min_start=round(load_start, 2), load_avg_1min_end=round(os.getloadavg()[0], 2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.steps, args.global_batch, args.seq_len)
    import torch

    cores = os.cpu_count() or 1
    rows = [measure(p, args.steps, args.warmup, args.global_batch, args.seq_len, cores) for p in args.processes]
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["speedup_vs_first"] = round(r["tokens_per_s"] / base, 3)
    env = dict(cpu=cpu_model(), cores=cores, torch=torch.__version__, python=sys.version.split()[0],
               date=time.strftime("%Y-%m-%d %H:%M:%S"), benchmark="python -m benchmarks.ddp_scaling "
               + " ".join(argv if argv is not None else sys.argv[1:]))
    atomic_write_text(RESULTS / "ddp_scaling_cpu.json", json.dumps({"environment": env, "results": rows}, indent=2))
    lines = [f"DDP scaling (gloo), {env['cpu']}, {cores} cores, torch {env['torch']}, {env['date']}", "",
             "hg38_xlstm MLM (d_model 128, 4 blocks, flip-and-add), fp32, global batch "
             f"{args.global_batch} x {args.seq_len}, median of {rows[0]['steps_timed']} steps after {args.warmup} "
             "warm-up steps.", "",
             "| processes | threads/process | tokens/s | step (s) | speedup | load (start/end) |",
             "|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['processes']} | {r['threads_per_process']} | {r['tokens_per_s']:,} | {r['step_s_median']} | "
              f"{r['speedup_vs_first']} | {r['load_avg_1min_start']}/{r['load_avg_1min_end']} |" for r in rows]
    if max(max(r["load_avg_1min_start"], r["load_avg_1min_end"]) for r in rows) > cores:
        lines += ["", f"Load average above the {cores} cores: other processes shared the CPUs during the run, so these "
                  "numbers do not measure DDP scaling (an oversubscribed 2-thread process slows down far more than "
                  "two 1-thread processes)."]
    atomic_write_text(RESULTS / "ddp_scaling_cpu.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

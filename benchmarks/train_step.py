"""Train-step throughput (tokens/s) and peak memory of the paper's xLSTM configurations and of every other backbone
(Mamba, Caduceus PH/PS, Transformer++, HyenaDNA at the sizes their hg38 experiments train).

    python -m benchmarks.train_step                       # CPU, 1k: every mode, dnax and reference emulation
    python -m benchmarks.train_step --device cuda --length 32768 --batch 4 --dtype bf16
    python -m benchmarks.train_step --mode flip_add --steps 3

A step is forward, cross-entropy, backward and AdamW on random tokens (the data path is measured separately by
`benchmarks.loader_throughput`). Model: d_model 128, 4 blocks, 4 heads, up-projection 2.0, qkv block size 4
(the DNA-xLSTM pretraining model). Each configuration runs in its own process, so peak memory is its own.

Reference emulation ("reference" rows): what DNA-xLSTM computes for the same model: the quadratic `parallel`
mLSTM form with gradient checkpointing on every block, and for sLSTM the xlstm package's `vanilla` backend (the
reference's only CPU backend). Results go to `benchmarks/results/train_step_<device>.{json,md}`; on shared cores
the load average is recorded beside every number.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_model
from dnax.atomic import atomic_write_text

MODEL = dict(d_model=128, n_layer=4, m_num_heads=4, m_proj_factor=2.0, m_qkv_proj_blocksize=4)
MODES = {
    "causal": dict(bidirectional=False),
    "flip_add": dict(bidirectional=True),
    "native_bidirectional": dict(bidirectional=True, m_backend_bidirectional=True),
    "alternating": dict(bidirectional=True, bidirectional_alternating=True),
    "slstm": dict(bidirectional=False, s_lstm_at=[0, 1, 2, 3]),
}
#: the other backbones at their paper configuration, built from the experiment that trains them
EXPERIMENT_BACKBONES = {
    "mamba": "experiments.hg38_mamba.hg38_mamba",
    "caduceus_ph": "experiments.hg38_caduceus.hg38_caduceus_ph",
    "caduceus_ps": "experiments.hg38_caduceus.hg38_caduceus_ps",
    "transformer_pp": "experiments.hg38_transformer_pp.hg38_transformer_pp",
    "hyena": "experiments.hg38_hyena.hg38_hyena",
}
ALL_MODES = [*MODES, *EXPERIMENT_BACKBONES]
RESULTS = Path(__file__).parent / "results"


def _reference_slstm_lm():
    """The xlstm package's vanilla sLSTM blocks (the reference's CPU backend) in the same LM shell."""
    import torch
    from torch import nn
    from xlstm import FeedForwardConfig, sLSTMBlock, sLSTMBlockConfig, sLSTMLayerConfig

    d, n = MODEL["d_model"], MODEL["n_layer"]

    class ReferenceSLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(12, d)
            blocks = []
            for i in range(n):
                cfg = sLSTMBlockConfig(
                    slstm=sLSTMLayerConfig(embedding_dim=d, num_heads=4, conv1d_kernel_size=4, backend="vanilla"),
                    feedforward=FeedForwardConfig(proj_factor=1.3, embedding_dim=d), _block_idx=i, _num_blocks=n)
                blocks.append(sLSTMBlock(cfg))
                blocks[-1].reset_parameters()
            self.blocks = nn.ModuleList(blocks)
            self.head = nn.Linear(d, 12, bias=False)

        def forward(self, ids):
            x = self.emb(ids)
            for b in self.blocks:
                x = torch.utils.checkpoint.checkpoint(b, x, use_reentrant=False)
            return self.head(x)

    return ReferenceSLSTM()


def _experiment_backbone(path: str, length: int):
    """The backbone of a registered experiment, at context `length` (the experiment's own sizes otherwise)."""
    import importlib

    import fiddle as fdl

    from dnax import fiddlers

    module, name = path.rsplit(".", 1)
    cfg = getattr(importlib.import_module(module), name)()
    fiddlers.seq_len(cfg, length)
    return fdl.build(cfg.model.backbone)


def build_model(mode: str, reference: bool, length: int):
    from dnax.models.backbones.xlstm import XLSTMLM

    if mode in EXPERIMENT_BACKBONES:
        return _experiment_backbone(EXPERIMENT_BACKBONES[mode], length)
    if reference and mode == "slstm":
        return _reference_slstm_lm()
    backend = dict(m_backend="parallel", gradient_checkpointing=True) if reference else {}
    return XLSTMLM(max_length=length, **MODEL, **MODES[mode], **backend)


def measure(mode: str, reference: bool, device: str, dtype: str, batch: int, length: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_model(mode, reference, length).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(7, 11, (batch, length), device=device)
    targets = torch.randint(7, 11, (batch, length), device=device)  # the padded vocabularies' extra ids never occur
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = model(ids)
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    params = sum(p.numel() for p in model.parameters())
    return dict(mode=mode, implementation="reference emulation" if reference else "dnax", device=device,
                params=params,
                dtype=dtype, batch=batch, length=length, steps=steps, step_s_median=round(median, 4),
                tokens_per_s=round(batch * length / median), peak_mem_gib=round(peak, 3),
                peak_mem_kind="torch.cuda.max_memory_allocated" if device == "cuda" else "process max RSS",
                threads=torch.get_num_threads(), load_avg_1min=round(os.getloadavg()[0], 2))


def environment(device: str) -> dict:
    import torch

    env = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), python=platform.python_version(), torch=torch.__version__,
               cpu=cpu_model(), cpu_count=os.cpu_count())
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def write_results(rows: list[dict], env: dict, stem: str) -> Path:
    """Write `<stem>.json/.md`, keeping earlier rows of configurations not measured in this run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / f"{stem}.json"
    if previous.exists():
        key = lambda r: (r["mode"], r["implementation"], r["dtype"], r["batch"])  # noqa: E731
        fresh = {key(r) for r in rows}
        kept = [dict(r, measured=r.get("measured", "earlier run"))
                for r in json.loads(previous.read_text())["results"] if key(r) not in fresh]
        order = ALL_MODES
        rows = sorted(kept + rows, key=lambda r: (order.index(r["mode"]) if r["mode"] in order else 99,
                                                   r["implementation"]))
    payload = json.dumps({"environment": env, "results": rows}, indent=2)
    lines = [f"Train step, {env.get('gpu', env['cpu'])}, torch {env['torch']}, {env['date']}", "",
             "| mode | implementation | parameters | batch x length | dtype | tokens/s | step (s) | peak memory (GiB) "
             "| load |", "|---|---|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        params = f"{r['params']:,}" if "params" in r else ""
        lines.append(f"| {r['mode']} | {r['implementation']} | {params} | {r['batch']} x {r['length']} | "
                     f"{r['dtype']} | {r['tokens_per_s']:,} | {r['step_s_median']} | {r['peak_mem_gib']} | "
                     f"{r['load_avg_1min']} |")
    atomic_write_text(RESULTS / f"{stem}.json", payload)
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    return RESULTS / f"{stem}.md"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=ALL_MODES, action="append",
                   help="default: every xLSTM mode and every other backbone")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--no-reference", action="store_true", help="skip the reference emulation rows")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # child process: one config
    p.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        print(json.dumps(measure(args.mode[0], args.reference, args.device, args.dtype, args.batch, args.length,
                                 args.steps)))
        return
    rows = []
    for mode in args.mode or ALL_MODES:
        has_reference = mode in MODES and not args.no_reference  # reference emulation exists for xLSTM modes
        for reference in (False, True) if has_reference else (False,):
            cmd = [sys.executable, "-m", "benchmarks.train_step", "--single", "--mode", mode, "--device",
                   args.device, "--dtype", args.dtype, "--batch", str(args.batch), "--length", str(args.length),
                   "--steps", str(1 if reference else args.steps)] + (["--reference"] if reference else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                err = (done.stderr.strip().splitlines() or ["failed"])[-1]
                rows.append(dict(mode=mode, implementation="reference emulation" if reference else "dnax",
                                 device=args.device, dtype=args.dtype, batch=args.batch, length=args.length,
                                 steps=0, step_s_median=float("nan"), tokens_per_s=0, peak_mem_gib=float("nan"),
                                 error=err, load_avg_1min=round(os.getloadavg()[0], 2)))
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    stem = f"train_step_{args.device}_{args.length}"
    print(f"wrote {write_results(rows, environment(args.device), stem)}")


if __name__ == "__main__":
    main()

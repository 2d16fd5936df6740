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
reference's only CPU backend); for Mamba, Caduceus-PH and Caduceus-PS the same dnax model with mamba_ssm's
`selective_scan_ref` as the scan (`_with_reference_scan`), at the smaller shape `REFERENCE_SCAN_SHAPE` (or, with
`--full-reference-shape`, at the dnax rows' shape: minutes per step). Results
go to `benchmarks/results/train_step_<device>.{json,md}`; on shared cores the load average is recorded beside every
number.
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

from benchmarks.machine import (check_device, cpu_model, failure_status, median_seconds, none_ran, nonnegative_int,
                                positive_int)
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
    "mamba2": "experiments.hg38_mamba.hg38_mamba2",
    "caduceus_ph": "experiments.hg38_caduceus.hg38_caduceus_ph",
    "caduceus_ps": "experiments.hg38_caduceus.hg38_caduceus_ps",
    "transformer_pp": "experiments.hg38_transformer_pp.hg38_transformer_pp",
    "hyena": "experiments.hg38_hyena.hg38_hyena",
}
#: the paper architecture of the anchors (DNA-xLSTM 2M mLSTM: d_model 256, 4 blocks, 4 heads of dim 128, conv,
#: RoPE, biases), from `experiments.hg38_xlstm.hg38_xlstm_2m` with these backbone overrides
XLSTM_2M = {
    "xlstm_2m_clm": dict(bidirectional=False),
    "xlstm_2m_flip_add": dict(),
    "xlstm_2m_native": dict(m_backend_bidirectional=True),
    "xlstm_2m_native_recompute": dict(m_backend_bidirectional=True, m_recompute_cell=True),
}
#: issue 7's anchor table: 131,072 tokens per step, bf16 autocast, AdamW + grad clip. Reference and xLSTMLarge
#: figures were measured on one H200 by the issue's author (not here); `target` is dnax's goal on that GPU.
ANCHOR_CASES = [  # the slow cases (compile, quadratic-time kernel) last
    dict(case="1k CLM (128 x 1024)", mode="xlstm_2m_clm", batch=128, length=1024, reference="254.5k (22.4)",
         xlstm_large="2.72M eager, 6.01M compiled (8.4 / 3.6)", target="\u2265 2.7M eager", min_tok_s=2.7e6),
    dict(case="1k MLM flip-and-add", mode="xlstm_2m_flip_add", batch=128, length=1024, reference="127.3k (23.1)",
         xlstm_large="1.37M (16.3)", target="\u2265 1.4M", min_tok_s=1.4e6),
    dict(case="1k MLM native bidirectional (chunkwise cell, 'auto')", mode="xlstm_2m_native", batch=128,
         length=1024, reference="244.3k (27.4)", xlstm_large="none exists", target="\u2265 2.5M", min_tok_s=2.5e6),
    dict(case="1k MLM native bidirectional, Triton kernel", mode="xlstm_2m_native", batch=128, length=1024,
         m_backend="kernel", reference="244.3k (27.4)", xlstm_large="none exists", target="\u2265 2.5M",
         min_tok_s=2.5e6),
    dict(case="32k CLM (4 x 32768)", mode="xlstm_2m_clm", batch=4, length=32768, reference="201.4k (22.5)",
         xlstm_large="2.09M-2.17M (8.4)", target="\u2265 2.2M", min_tok_s=2.2e6),
    dict(case="32k MLM native bidirectional, chunkwise cell ('auto')", mode="xlstm_2m_native", batch=4,
         length=32768, m_backend="chunkwise", reference="out of memory at batch 1", xlstm_large="none exists",
         target="trains; \u2265 1.5M; \u2264 12 GiB", min_tok_s=1.5e6, max_gib=12.0),
    dict(case="32k MLM native bidirectional, chunkwise cell recomputed in backward (the 32k experiment)",
         mode="xlstm_2m_native_recompute", batch=4, length=32768, m_backend="chunkwise",
         reference="out of memory at batch 1", xlstm_large="none exists", target="trains; \u2265 1.5M; \u2264 12 GiB",
         min_tok_s=1.5e6, max_gib=12.0),
    dict(case="1k CLM, torch.compile", mode="xlstm_2m_clm", batch=128, length=1024, compile=True, timeout=300,
         reference="254.5k (22.4)", xlstm_large="6.01M (3.6)", target="\u2265 5M compiled", min_tok_s=5e6),
    dict(case="32k MLM native bidirectional (4 x 32768), Triton kernel", mode="xlstm_2m_native", batch=4,
         length=32768, m_backend="kernel", timeout=240, reference="out of memory at batch 1",
         xlstm_large="none exists", target="trains; \u2265 1.5M; \u2264 12 GiB", min_tok_s=1.5e6, max_gib=12.0),
]
DEFAULT_MODES = [*MODES, *EXPERIMENT_BACKBONES]
ALL_MODES = [*DEFAULT_MODES, *XLSTM_2M]
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


#: Mamba-based modes with a reference emulation, and the (batch, length) their reference rows run at. The reference
#: scan's backward zero-fills whole (batch, D, L, N) gradient buffers at every time step, so its cost is linear in
#: batch but quadratic in length: a shorter length makes the reference FASTER per token, so the dnax / reference
#: ratio from these rows (dnax at the full shape) is a lower bound on the ratio at the full shape (measured on the
#: 2-core machine: one reference scan, d_inner 256, costs 5.1-5.5 ms/token at 1 x 512 and 16.8 ms/token at
#: 4 x 1024). One sequence of 512 keeps a reference row to about a minute on 2 cores; a 4 x 1024 Caduceus-PS
#: reference step (16 such scans, 69 s each) takes about 20 minutes: `--full-reference-shape` runs them at the dnax
#: rows' shape anyway, one step without a warm-up step (the first-step overhead is far below 1 % of such a step).
REFERENCE_SCAN_SHAPE = {"mamba": (1, 512), "caduceus_ph": (1, 512), "caduceus_ps": (1, 512)}


def _with_reference_scan(model):
    """`model` with every Mamba scan replaced by mamba_ssm's `selective_scan_ref`, the scan the reference runs on CPU
    (`Mamba(use_fast_path=False)` with mamba_simple.selective_scan_fn -> selective_scan_ref). A BiMamba then runs
    its two directions as two separate Mamba calls (the reference's `BiMambaWrapper`) instead of dnax's one fused
    call. Everything else stays dnax's (projections, depthwise conv, RMSNorm, RCPS with both strands in one
    batch): these are a small part of the step, and the reference's fused add+norm is Triton, which cannot run on
    CPU anyway."""
    import importlib.machinery
    import importlib.util
    import types

    from dnax.models.layers.mamba import Mamba

    if importlib.util.find_spec("selective_scan_cuda") is None:  # mamba_ssm imports its CUDA extension unguarded
        stub = types.ModuleType("selective_scan_cuda")
        stub.__spec__ = importlib.machinery.ModuleSpec("selective_scan_cuda", None)
        sys.modules["selective_scan_cuda"] = stub
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref

    mixers = [m for m in model.modules() if isinstance(m, Mamba)]
    if not mixers:
        raise ValueError(f"{type(model).__name__} has no Mamba mixer: no reference scan to emulate")
    for m in mixers:
        m.scan_fn = selective_scan_ref
    return model


def _experiment_backbone(path: str, length: int, **overrides):
    """The backbone of a registered experiment, at context `length` (the experiment's own sizes otherwise)."""
    import importlib

    import fiddle as fdl

    from dnax import fiddlers

    module, name = path.rsplit(".", 1)
    cfg = getattr(importlib.import_module(module), name)()
    fiddlers.seq_len(cfg, length)
    for key, value in overrides.items():
        setattr(cfg.model.backbone, key, value)
    return fdl.build(cfg.model.backbone)


def build_model(mode: str, reference: bool, length: int, m_backend: str | None = None,
                s_backend: str | None = None, scan_backend: str | None = None):
    from dnax.models.backbones.xlstm import XLSTMLM

    if mode in XLSTM_2M:
        backend = dict(m_backend="parallel", gradient_checkpointing=True) if reference else {}
        if m_backend:
            backend["m_backend"] = m_backend
        return _experiment_backbone("experiments.hg38_xlstm.hg38_xlstm_2m", length, **XLSTM_2M[mode], **backend)

    if mode in EXPERIMENT_BACKBONES:
        model = _experiment_backbone(EXPERIMENT_BACKBONES[mode], length)
        if scan_backend:
            from dnax.models.layers.mamba import Mamba

            for m in model.modules():
                if isinstance(m, Mamba):
                    m.scan_backend = scan_backend
        return _with_reference_scan(model) if reference else model
    if reference and mode == "slstm":
        return _reference_slstm_lm()
    backend = dict(m_backend="parallel", gradient_checkpointing=True) if reference else {}
    if s_backend:
        backend["s_backend"] = s_backend
    return XLSTMLM(max_length=length, **MODEL, **MODES[mode], **backend)


def measure(mode: str, reference: bool, device: str, dtype: str, batch: int, length: int, steps: int,
            compile: bool = False, m_backend: str | None = None, warmup: int = 1,
            s_backend: str | None = None, scan_backend: str | None = None) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_model(mode, reference, length, m_backend, s_backend, scan_backend).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if compile:
        model = torch.compile(model)
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
    for _ in range(warmup):
        step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    median = median_seconds(step, steps, sync)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return dict(mode=mode, implementation=_implementation(reference, compile, m_backend, s_backend, scan_backend),
                device=device, params=params, dtype=dtype, batch=batch, length=length, steps=steps,
                step_s_median=round(median, 4),
                warmup_steps=warmup, tokens_per_s=round(batch * length / median), peak_mem_gib=round(peak, 3),
                peak_mem_kind="torch.cuda.max_memory_allocated" if device == "cuda" else "process max RSS",
                threads=torch.get_num_threads(), load_avg_1min=round(os.getloadavg()[0], 2))


def _implementation(reference: bool, compile: bool, m_backend: str | None, s_backend: str | None,
                    scan_backend: str | None = None) -> str:
    """A row's implementation label: dnax or the reference emulation, with any compile / backend override."""
    label = "reference emulation" if reference else "dnax" + (" (torch.compile)" if compile else "")
    for name, value in (("m_backend", m_backend), ("s_backend", s_backend), ("scan_backend", scan_backend)):
        label += f" ({name}={value})" if value else ""
    return label


def environment(device: str) -> dict:
    import torch

    env = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), python=platform.python_version(), torch=torch.__version__,
               cpu=cpu_model(), cpu_count=os.cpu_count())
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def write_results(rows: list[dict], env: dict, stem: str, out_dir: Path = RESULTS) -> Path:
    """Write `out_dir/<stem>.json/.md`, keeping earlier rows of configurations not measured in this run (an earlier
    measurement stays beside a configuration that failed this time)."""
    previous = out_dir / f"{stem}.json"
    if previous.exists():
        key = lambda r: (r["mode"], r["implementation"], r["dtype"], r["batch"])  # noqa: E731
        fresh = {key(r) for r in rows if not r.get("error")}
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
        tokens = f"error: {r['error'][:100]}" if r.get("error") else f"{r['tokens_per_s']:,}"
        lines.append(f"| {r['mode']} | {r['implementation']} | {params} | {r['batch']} x {r['length']} | "
                     f"{r['dtype']} | {tokens} | {r['step_s_median']} | {r['peak_mem_gib']} | "
                     f"{r['load_avg_1min']} |")
    atomic_write_text(out_dir / f"{stem}.json", payload)
    atomic_write_text(out_dir / f"{stem}.md", "\n".join(lines) + "\n")
    return out_dir / f"{stem}.md"


def run_config(mode: str, reference: bool, device: str, dtype: str, batch: int, length: int, steps: int,
               compile: bool = False, m_backend: str | None = None, timeout: float | None = None,
               warmup: int = 1, s_backend: str | None = None, scan_backend: str | None = None) -> dict:
    """`measure` in a fresh process (its own peak memory); a failure or timeout becomes a row with `error`."""
    cmd = [sys.executable, "-m", "benchmarks.train_step", "--single", "--mode", mode, "--device", device,
           "--dtype", dtype, "--batch", str(batch), "--length", str(length), "--steps", str(steps),
           "--warmup", str(warmup)]
    cmd += (["--reference"] if reference else []) + (["--compile"] if compile else [])
    cmd += ["--m-backend", m_backend] if m_backend else []
    cmd += ["--s-backend", s_backend] if s_backend else []
    cmd += ["--scan-backend", scan_backend] if scan_backend else []
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        err = (done.stderr.strip().splitlines() or ["failed"])[-1]
    except subprocess.TimeoutExpired:
        err = f"timeout after {timeout:.0f} s"
    return dict(mode=mode, implementation=_implementation(reference, compile, m_backend, s_backend, scan_backend),
                device=device, dtype=dtype, batch=batch, length=length, steps=0, step_s_median=float("nan"),
                tokens_per_s=0, peak_mem_gib=float("nan"), error=err, load_avg_1min=round(os.getloadavg()[0], 2))


def run_anchors(device: str, steps: int, timeout: float | None, out_dir: Path = RESULTS) -> Path:
    """Issue 7's anchor table for dnax on this GPU: `out_dir/xlstm_anchors_<gpu>.{json,md}`."""
    rows = []
    for case in ANCHOR_CASES:
        limit = max(timeout or 0, case.get("timeout", 0)) or None  # compile and the quadratic-time kernel need longer
        row = run_config(case["mode"], False, device, "bf16", case["batch"], case["length"], steps,
                         compile=case.get("compile", False), m_backend=case.get("m_backend"), timeout=limit)
        met = (row["tokens_per_s"] >= case["min_tok_s"]
               and row.get("peak_mem_gib", float("inf")) <= case.get("max_gib", float("inf")))
        rows.append(dict(row, case=case["case"], target=case["target"], reference_h200=case["reference"],
                         xlstm_large_h200=case["xlstm_large"], target_met=bool(met)))
        print(json.dumps(rows[-1]), flush=True)
    env = environment(device)
    gpu = env.get("gpu", env["cpu"])
    lines = [f"xLSTM anchors (paper 2M mLSTM, 131,072 tokens per step, bf16 autocast, AdamW + grad clip), dnax on "
             f"{gpu}, torch {env['torch']}, {env['date']}", "",
             "Reference and xLSTMLarge columns: tokens/s (peak GiB) measured by the issue's author on one H200, "
             "not re-measured here.", "",
             "| case | reference (H200) | xLSTMLarge (H200) | dnax target | dnax tokens/s | dnax peak GiB | met |",
             "|---|---|---|---|---:|---:|---|"]
    for r in rows:
        measured = f"{r['tokens_per_s']:,}" if not r.get("error") else f"error: {r['error'][:100]}"
        lines.append(f"| {r['case']} | {r['reference_h200']} | {r['xlstm_large_h200']} | {r['target']} | "
                     f"{measured} | {r['peak_mem_gib']} | {'yes' if r['target_met'] else 'no'} |")
    stem = "xlstm_anchors_" + gpu.lower().replace(" ", "_").replace("/", "_")
    atomic_write_text(out_dir / f"{stem}.json", json.dumps({"environment": env, "results": rows}, indent=2))
    atomic_write_text(out_dir / f"{stem}.md", "\n".join(lines) + "\n")
    return out_dir / f"{stem}.md"


def main(argv=None) -> int:
    """Exit status 0, or 1 when a configuration failed (its row holds the error; nothing is written when none ran);
    argument errors (also `--device cuda` without a GPU) exit 2 before anything runs."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_step", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=ALL_MODES, action="append",
                   help="default: every xLSTM mode and every other backbone")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--batch", type=positive_int, default=4)
    p.add_argument("--length", type=positive_int, default=1024)
    p.add_argument("--steps", type=positive_int, default=3)
    p.add_argument("--no-reference", action="store_true", help="skip the reference emulation rows")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--m-backend", choices=["parallel", "chunkwise", "kernel", "auto"], default=None,
                   help="mLSTM backend override for the xlstm_2m_* modes")
    p.add_argument("--s-backend", choices=["vanilla", "triton", "cuda", "auto"], default=None,
                   help="sLSTM backend override for the slstm mode")
    p.add_argument("--scan-backend", choices=["auto", "torch", "triton"], default=None,
                   help="selective-scan backend override for the Mamba and Caduceus modes")
    p.add_argument("--timeout", type=float, default=None, help="seconds per configuration")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="folder of the results (default: %(default)s)")
    p.add_argument("--preset", choices=["anchors"], help="anchors: issue 7's GPU anchor table (bf16, 2M model)")
    p.add_argument("--full-reference-shape", action="store_true",
                   help="Mamba/Caduceus reference rows at --batch x --length (minutes per step; no warm-up step) "
                        "instead of REFERENCE_SCAN_SHAPE")
    p.add_argument("--warmup", type=nonnegative_int, default=1,
                   help="untimed steps before the timed ones (0 for configurations that take minutes per step)")
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # child process: one config
    p.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        print(json.dumps(measure(args.mode[0], args.reference, args.device, args.dtype, args.batch, args.length,
                                 args.steps, args.compile, args.m_backend, args.warmup, args.s_backend,
                                 args.scan_backend)))
        return 0
    check_device(p, args.device)
    if args.preset == "anchors":  # a missed target or a timed-out case is a result here, not a failure
        print(f"wrote {run_anchors(args.device, args.steps, args.timeout, args.out_dir)}")
        return 0
    rows = []
    for mode in args.mode or DEFAULT_MODES:
        # reference emulation exists for the xLSTM and the Mamba-based modes
        has_reference = (mode in MODES or mode in REFERENCE_SCAN_SHAPE) and not args.no_reference
        for reference in (False, True) if has_reference else (False,):
            scan_reference = reference and mode in REFERENCE_SCAN_SHAPE
            full = scan_reference and args.full_reference_shape
            batch, length = (REFERENCE_SCAN_SHAPE[mode] if scan_reference and not full
                             else (args.batch, args.length))
            rows.append(run_config(mode, reference, args.device, args.dtype, batch, length,
                                   1 if reference else args.steps, args.compile, args.m_backend, args.timeout,
                                   warmup=0 if full else args.warmup,
                                   s_backend=None if reference else args.s_backend,
                                   scan_backend=None if reference else args.scan_backend))
            print(json.dumps(rows[-1]), flush=True)
    if none_ran(rows, "configuration"):
        return 1
    stem = f"train_step_{args.device}_{args.length}" + ("_bf16" if args.dtype == "bf16" else "")
    print(f"wrote {write_results(rows, environment(args.device), stem, args.out_dir)}")
    return failure_status(rows, "configuration")


if __name__ == "__main__":
    sys.exit(main())

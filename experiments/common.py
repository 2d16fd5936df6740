"""Shared fragments of the paper's experiments: the pretraining recipe, the experiment index, sample/tiny fiddlers.

Every experiment is a nullary function returning a fiddle config; `@experiment` records it in an index that
serves `python -m dnax.run --list` and the tests (the CLI itself resolves experiments by import path).
"""
from __future__ import annotations

from typing import Callable

import fiddle as fdl
import torch
from composer import Trainer
from composer.algorithms import GradientClipping
from composer.optim import CosineAnnealingWithWarmupScheduler

from dnax import fiddlers, tags
from dnax.algorithms.reverse_complement import ReverseComplementAugmentation
from dnax.callbacks import MidEpochRNGRestore, RunReport, SetAsideInterruptedCheckpoints
from dnax.data.pretrain import build_pretrain_dataloader
from dnax.data.sources import cache_root, hg38_mds, per_rank_batch
from dnax.models.lm import DnaLM
from dnax.models.objectives import CausalLM, MaskedLM
from dnax.train import train

_INDEX: dict[str, Callable[[], fdl.Buildable]] = {}
RUN_DIR = "runs/{run_name}"


def experiment(fn: Callable[[], fdl.Buildable]) -> Callable[[], fdl.Buildable]:
    """Record `fn` in the experiment index under its import path."""
    _INDEX[f"{fn.__module__}.{fn.__name__}"] = fn
    return fn


def registered() -> dict[str, Callable[[], fdl.Buildable]]:
    return dict(_INDEX)


def with_overrides(cfg: fdl.Config, **overrides) -> fdl.Config:
    """`cfg` with each keyword set on it (a backbone's paper defaults, changed where a variant says so); an unknown
    name fails when the config is built."""
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def pretrain(
    backbone: fdl.Config,
    *,
    mlm: bool = True,
    seq_len: int = 1024,
    global_batch: int = 1024,
    max_steps: int = 10_000,
    lr: float = 8e-3,
    lr_min: float = 1e-4,
    warmup_fraction: float = 0.1,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    grad_clip: float = 1.0,
    rc_aug: bool = True,
    eval_windows: int = 16_384,
    num_workers: int = 8,
    seed: int = 2222,
) -> fdl.Partial:
    """The reference hg38 pretraining recipe (DNA-xLSTM `configs/experiment/hg38/hg38.yaml` + its pretrain scripts).

    hg38 windows of `seq_len` from `human-sequences.bed`, `global_batch` windows per step (2^20 tokens at 1k),
    AdamW, linear warmup over `warmup_fraction` of the run then cosine decay to `lr_min`, gradient clipping by
    norm, bf16 mixed precision, 10 evaluations, checkpoints every 500 steps, autoresume.
    """
    length = tags.SeqLen.new(seq_len)
    backbone.max_length = length
    data = fdl.Config(hg38_mds, seq_len=length)
    batch = fdl.Config(per_rank_batch, global_batch=tags.GlobalBatch.new(global_batch))
    loader = lambda split, shuffle, **kw: fdl.Config(  # noqa: E731
        build_pretrain_dataloader, remote=data, split=split, batch_size=batch, shuffle=shuffle,
        num_workers=num_workers, **kw)
    algorithms = [fdl.Config(GradientClipping, clipping_type="norm", clipping_threshold=grad_clip)]
    if rc_aug:
        algorithms.append(fdl.Config(ReverseComplementAugmentation, p=0.5, seed=seed))
    cfg = fdl.Partial(
        train,
        model=fdl.Config(DnaLM, backbone=backbone,
                         objective=fdl.Config(MaskedLM, train_seed=seed) if mlm else fdl.Config(CausalLM)),
        train_dataloader=loader("train", True, seed=seed),
        eval_dataloader=loader("valid", False, max_windows=eval_windows),
        optimizer=fdl.Partial(torch.optim.AdamW, lr=lr, betas=betas, weight_decay=weight_decay, eps=1e-8),
        trainer=fdl.Partial(
            Trainer,
            run_name=None,
            max_duration=f"{max_steps}ba",
            schedulers=[fdl.Config(CosineAnnealingWithWarmupScheduler, t_warmup=f"{warmup_fraction}dur",
                                   alpha_f=lr_min / lr)],
            algorithms=algorithms,
            loggers=[fdl.Config(RunReport, folder=RUN_DIR)],
            callbacks=[fdl.Config(MidEpochRNGRestore),
                       fdl.Config(SetAsideInterruptedCheckpoints, folder=RUN_DIR + "/checkpoints")],
            eval_interval=f"{max(1, max_steps // 10)}ba",
            save_folder=RUN_DIR + "/checkpoints",
            save_interval="500ba",
            save_overwrite=False,
            autoresume=True,
            precision="amp_bf16",
            device_train_microbatch_size="auto",
            seed=seed,
        ),
    )
    return cfg


def at_32k(cfg: fdl.Partial) -> fdl.Partial:
    """32k windows with the same 2^20 tokens per step (32 windows) and the same 16M validation tokens."""
    fiddlers.seq_len(cfg, 32_768)
    fiddlers.global_batch(cfg, 32)
    cfg.eval_dataloader.max_windows = 512
    return cfg


# -- fiddlers that need the data recipes ---------------------------------------------------------------------------
#: Sized from a measured step time: flip-and-add xLSTM, batch 8 x 1024, fp32, about 3.2 s per step on the 2 CPU
#: cores of the reference machine, so 128 steps + 4 evaluations of 96 windows take about 8 minutes. A calibration
#: run there reached validation loss 1.216 at step 80 and 1.199 at step 120.
SAMPLE_STEPS = 128
SAMPLE_BATCH = 8
SAMPLE_EVAL_WINDOWS = 96


def sample_mds(seq_len: int) -> str:
    """The bundled 4 Mbp chrX sample converted to MDS at `seq_len` (once, cached under the dnax cache)."""
    from data_tools.fasta_to_mds import convert_sample

    out = cache_root() / "sample" / f"mds_{seq_len}"
    convert_sample(out, seq_len=seq_len, progress=False)
    return str(out)


def _use_data(cfg: fdl.Buildable, data: fdl.Config) -> None:
    cfg.train_dataloader.remote = data
    cfg.eval_dataloader.remote = data


def use_sample_data(cfg: fdl.Buildable, *, steps: int = SAMPLE_STEPS, batch: int = SAMPLE_BATCH,
                    eval_windows: int = SAMPLE_EVAL_WINDOWS) -> None:
    """Bundled chrX sample (train: first 3.5 Mbp, validation: last 0.5 Mbp), CPU fp32, a short schedule."""
    fiddlers.cpu(cfg)
    remote = cfg.train_dataloader.remote
    data = fdl.Config(sample_mds, seq_len=remote.seq_len)
    for tag in fdl.get_tags(remote, "seq_len"):  # keep the SeqLen tag, so `seq_len(n)` still reaches the data
        fdl.add_tag(data, "seq_len", tag)
    _use_data(cfg, data)
    fiddlers.global_batch(cfg, batch)
    fiddlers.steps(cfg, steps)
    cfg.eval_dataloader.max_windows = eval_windows


def sample(cfg: fdl.Buildable) -> None:
    """Train on the bundled 4 Mbp of real human DNA (GRCh37 chrX) on CPU: 128 steps of 8 x 1024, ~8 min on 2 cores."""
    use_sample_data(cfg)


def tiny(cfg: fdl.Buildable) -> None:
    """The smallest trainable version of a pretraining experiment (tests, smoke runs): d_model 32, context 128,
    2 steps of 2 windows, an evaluation on 4 windows after each step, on the bundled sample, CPU."""
    use_sample_data(cfg, steps=2, batch=2, eval_windows=4)
    fiddlers.seq_len(cfg, 128)
    cfg.model.backbone.d_model = 32
    cfg.trainer.save_interval = "1ba"

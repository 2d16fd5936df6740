"""Cross-cutting config transforms, applied by name on the command line (`python -m dnax.run EXP sample`).

Each fiddler mutates a pretraining config built by `experiments.common.pretrain` in place. Fiddlers that need
the experiments' data recipes (`sample`, `tiny`) live in `experiments/common.py`. Shared scalars have
one owner: `seq_len` sets every field tagged `SeqLen`; `global_batch` sets every field tagged `GlobalBatch`.
"""
from __future__ import annotations

import fiddle as fdl

from dnax import tags


def available() -> list[str]:
    return [n for n, v in globals().items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == __name__
            and n != "available"]


def seq_len(cfg: fdl.Buildable, n: int) -> None:
    """Context length of the data windows and the model."""
    fdl.set_tagged(cfg, tag=tags.SeqLen, value=int(n))


def global_batch(cfg: fdl.Buildable, n: int) -> None:
    """Windows per optimizer step, summed over all processes."""
    fdl.set_tagged(cfg, tag=tags.GlobalBatch, value=int(n))


def steps(cfg: fdl.Buildable, n: int) -> None:
    """Train for `n` optimizer steps; evaluation and checkpoint intervals scale with it (4 evaluations)."""
    n = int(n)
    cfg.trainer.max_duration = f"{n}ba"
    cfg.trainer.eval_interval = f"{max(1, n // 4)}ba"
    cfg.trainer.save_interval = f"{max(1, n // 4)}ba"


def cpu(cfg: fdl.Buildable) -> None:
    """Run on CPU in fp32 (Composer does not offer bf16 autocast on CPU; see `cpu_bf16`)."""
    cfg.trainer.device = "cpu"
    cfg.trainer.precision = "fp32"
    cfg.trainer.device_train_microbatch_size = None
    for loader in (cfg.train_dataloader, cfg.eval_dataloader):
        if loader is not None:
            loader.num_workers = 0


def cpu_bf16(cfg: fdl.Buildable) -> None:
    """CPU with the model forward under torch.autocast(bfloat16)."""
    cpu(cfg)
    cfg.model.autocast_dtype = "bfloat16"


def bf16(cfg: fdl.Buildable) -> None:
    """bf16 mixed precision on GPU through Composer."""
    cfg.trainer.precision = "amp_bf16"


def fsdp(cfg: fdl.Buildable) -> None:
    """Shard parameters, gradients and optimizer state with FSDP (FULL_SHARD)."""
    cfg.trainer.parallelism_config = {"fsdp": {"sharding_strategy": "FULL_SHARD", "mixed_precision": "DEFAULT"}}

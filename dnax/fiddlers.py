"""Cross-cutting config transforms, applied by name on the command line (`python -m dnax.run EXP sample`).

Each fiddler mutates a pretraining config built by `experiments.common.pretrain` in place. Fiddlers that need
the experiments' data recipes (`sample`, `tiny`) live in `experiments/common.py`. Shared scalars have
one owner: `seq_len` sets every field tagged `SeqLen`; `global_batch` sets every field tagged `GlobalBatch`.
"""
from __future__ import annotations

import inspect

import fiddle as fdl

from dnax import tags


class FiddlerError(ValueError):
    """A fiddler refused its arguments or the config; the CLI prints it as one line."""


def available() -> list[str]:
    return [n for n, v in globals().items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == __name__
            and n != "available" and not isinstance(v, type)]


def _positive_int(fiddler: str, n) -> int:
    """`n` as an int >= 1 (`1e4` counts as 10000), or a FiddlerError naming the call (`steps(0)`, `seq_len('1k')`)."""
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise FiddlerError(f"{fiddler}({n!r}): expected a positive integer")
    return n


def seq_len(cfg: fdl.Buildable, n: int) -> None:
    """Context length of the data windows and the model."""
    fdl.set_tagged(cfg, tag=tags.SeqLen, value=_positive_int("seq_len", n))


def global_batch(cfg: fdl.Buildable, n: int) -> None:
    """Windows per optimizer step, summed over all processes."""
    fdl.set_tagged(cfg, tag=tags.GlobalBatch, value=_positive_int("global_batch", n))


def steps(cfg: fdl.Buildable, n: int) -> None:
    """Train for `n` optimizer steps; evaluation and checkpoint intervals scale with it (4 evaluations)."""
    n = _positive_int("steps", n)
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


def _runs_on_cpu(cfg: fdl.Buildable) -> bool:
    """Whether the trainer will run on CPU: `device="cpu"`, or no device given and no GPU here (Composer's rule)."""
    import torch

    device = cfg.trainer.device
    return device == "cpu" or (device is None and not torch.cuda.is_available())


def fsdp(cfg: fdl.Buildable, version: int | None = None) -> None:
    """Shard parameters, gradients and optimizer state over the processes (FULL_SHARD), with sharded checkpoints.

    `version` None picks FSDP1 on GPU (Composer's default) and FSDP2 on CPU: Composer's FSDP1 needs CUDA, FSDP2
    (`torch.distributed.fsdp.fully_shard`) runs over gloo. `fsdp(2)` forces FSDP2; `fsdp(1)` on CPU is refused.
    Apply it after fiddlers that choose the device (`tiny fsdp`, `cpu fsdp`).
    """
    from composer.utils.parallelism import FSDP2Config

    on_cpu = _runs_on_cpu(cfg)
    version = (2 if on_cpu else 1) if version is None else int(version)
    if version not in (1, 2):
        raise FiddlerError(f"fsdp({version}): the FSDP version is 1 or 2")
    if version == 1 and on_cpu:
        raise FiddlerError("fsdp(1): Composer's FSDP1 needs CUDA; on CPU use `fsdp` or `fsdp(2)` (FSDP2 over gloo)")
    if version == 2:
        shard = fdl.Config(FSDP2Config, reshard_after_forward=True, state_dict_type="sharded")
    else:
        shard = {"sharding_strategy": "FULL_SHARD", "mixed_precision": "DEFAULT", "state_dict_type": "sharded"}
    cfg.trainer.parallelism_config = {"fsdp": shard}


def nan_guard(cfg: fdl.Buildable, action: str = "stop") -> None:
    """Watch the training loss: on NaN/inf `stop` with the step and the windows, or `skip` that update
    (`dnax.callbacks.NonFiniteLossGuard`)."""
    from dnax.callbacks import NonFiniteLossGuard

    if action not in ("stop", "skip"):
        raise FiddlerError(f"nan_guard({action!r}): the action is 'stop' or 'skip'")
    callbacks = [c for c in (cfg.trainer.callbacks or []) if c.__fn_or_cls__ is not NonFiniteLossGuard]
    cfg.trainer.callbacks = [*callbacks, fdl.Config(NonFiniteLossGuard, action=action)]


def triton_kernels(cfg: fdl.Buildable) -> None:
    """Run the model's recurrences on dnax's Triton kernels (GPU; nothing to build, unlike mamba_ssm's and xlstm's
    CUDA extensions): the selective scan of Mamba/Caduceus (`ssm_cfg["scan_backend"] = "triton"`) and the sLSTM
    recurrence of xLSTM (`s_backend = "triton"`). On CPU tensors those layers run their PyTorch loops (Triton's
    interpreter, TRITON_INTERPRET=1, runs the kernels there, slowly)."""
    backbone = cfg.model.backbone
    params = inspect.signature(backbone.__fn_or_cls__).parameters
    if "ssm_cfg" in params:
        if (backbone.ssm_cfg or {}).get("layer") == "Mamba2":
            raise FiddlerError("triton_kernels: the Mamba2 mixer has no dnax Triton kernel (on CUDA it uses "
                               "mamba_ssm's where that imports)")
        backbone.ssm_cfg = {**(backbone.ssm_cfg or {}), "scan_backend": "triton"}
    elif "s_backend" in params:
        backbone.s_backend = "triton"
    else:
        raise FiddlerError(f"triton_kernels: {backbone.__fn_or_cls__.__name__} has no Triton kernel to switch to "
                           "(Mamba/Caduceus selective scan, xLSTM sLSTM)")

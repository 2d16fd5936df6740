"""The one wiring function: built objects in, a fitted Composer Trainer out. No config parsing here."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from composer import Trainer
from torch import nn


def param_groups(model: nn.Module) -> list[dict]:
    """All trainable parameters in one group, except those carrying an `_optim` dict of overrides
    (e.g. HyenaDNA's filter parameters: own lr / no weight decay), which get one group per distinct dict.

    Like the reference, weight decay applies to every parameter that does not opt out through `_optim`.
    """
    plain, special = [], {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        hp = getattr(p, "_optim", None)
        if hp is None:
            plain.append(p)
        else:
            special.setdefault(tuple(sorted(hp.items())), []).append(p)
    return [{"params": plain}] + [{"params": ps, **dict(k)} for k, ps in special.items()]


def train(
    model: nn.Module,
    train_dataloader: Iterable,
    optimizer: Callable[[list[dict]], torch.optim.Optimizer],
    trainer: Callable[..., Trainer],
    eval_dataloader: Iterable | None = None,
) -> Trainer:
    """Fit `model` on `train_dataloader` with `trainer(**everything else)`.

    Args:
        model: a ComposerModel (e.g. `DnaLM`).
        train_dataloader / eval_dataloader: built dataloaders.
        optimizer: factory taking parameter groups (e.g. `functools.partial(torch.optim.AdamW, lr=...)`).
        trainer: factory for `composer.Trainer` holding duration, schedulers, algorithms, callbacks, precision,
            checkpointing; the model, data and optimizer are added here.
    """
    fit = trainer(model=model, train_dataloader=train_dataloader, eval_dataloader=eval_dataloader,
                  optimizers=optimizer(param_groups(model)))
    fit.fit()
    return fit

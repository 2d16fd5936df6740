"""The one wiring function: built objects in, a fitted Composer Trainer out. No config parsing here."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from composer import Trainer
from composer.core import State
from composer.utils import dist
from torch import nn


class CheckpointMismatchError(ValueError):
    """The checkpoint a run resumes from (autoresume, load_path) does not fit the model being trained."""


class TrainerArgumentError(ValueError):
    """Composer rejected a trainer argument (e.g. `max_duration='abc'`, `precision='fp64'`)."""


def _keyword(factory: Callable, name: str):
    return getattr(factory, "keywords", {}).get(name)


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

    A run that autoresumes at or past its `max_duration` is not fitted again: a one-line note is printed and the
    Trainer returned as loaded. A checkpoint that does not fit the model (the run's configuration changed) is a
    CheckpointMismatchError, an argument Composer rejects a TrainerArgumentError (one line each).
    """
    try:
        fit = trainer(model=model, train_dataloader=train_dataloader, eval_dataloader=eval_dataloader,
                      optimizers=optimizer(param_groups(model)))
    except RuntimeError as e:  # torch's strict load of the checkpoint the run resumes from
        if not str(e).startswith("Error(s) in loading state_dict"):
            raise
        lines = str(e).splitlines()
        first = (lines[1] if len(lines) > 1 else lines[0]).strip().rstrip(".")
        raise CheckpointMismatchError(
            f"run {_keyword(trainer, 'run_name')!r}: the checkpoint it resumes from does not fit this model ({first}"
            f"{f' and {len(lines) - 2} more' if len(lines) > 2 else ''}); continue that run with its own "
            "config.json, or train this configuration under another trainer.run_name") from e
    except ValueError as e:  # Composer's checks of its arguments: a duration, a precision, an interval
        raise TrainerArgumentError(f"trainer: {e}") from e
    done = _nothing_to_train(fit.state)
    if done:  # a finished run started again (same run name, autoresume): say so instead of Composer's ValueError
        if dist.get_global_rank() == 0:
            print(done, flush=True)
        return fit
    fit.fit()
    return fit


def _nothing_to_train(state: State) -> str | None:
    """A one-line note when the trainer's position already reaches `max_duration` (a finished run resumed from its
    last checkpoint, or a zero duration), else None."""
    limit = state.max_duration
    if limit is None:
        return None
    elapsed = state.timestamp.get(limit.unit)
    if elapsed < limit:
        return None
    if int(state.timestamp.batch) == 0:
        return f"nothing to train: max_duration is {limit}"
    return (f"run {state.run_name!r} is already finished: its checkpoint is at {elapsed} of max_duration {limit}; "
            "nothing to train (another trainer.run_name starts a new run, a longer steps(n) continues this one)")

"""The one wiring function: built objects in, a fitted Composer Trainer out. No config parsing here."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from composer import ComposerModel, Trainer
from composer.core import State
from composer.utils import dist
from torch import nn


class CheckpointMismatchError(ValueError):
    """The checkpoint a run resumes from (autoresume, load_path) does not fit the model being trained."""


class TrainerArgumentError(ValueError):
    """Composer rejected a trainer argument (e.g. `max_duration='abc'`, `precision='fp64'`)."""


def _keyword(factory: Callable, name: str):
    return getattr(factory, "keywords", {}).get(name)


#: module types whose parameters get no weight decay in the reference (hyena-dna / DNA-xLSTM `add_optimizer_hooks`
#: with `normalization_weight_decay: False`); only torch's own classes: the reference's xLSTM LayerNorm and Mamba /
#: Llama RMSNorm are plain modules, so their weights are decayed there (and here)
NORMALIZATION_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.SyncBatchNorm,
                         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.LocalResponseNorm)


def no_weight_decay(module: nn.Module, bias_weight_decay: bool = False,
                    normalization_weight_decay: bool = False) -> set[int]:
    """The ids of `module`'s parameters that the reference trains without weight decay (its
    `train.optimizer_param_grouping`, both False in every DNA-xLSTM / Caduceus / HyenaDNA run): biases (names
    ending in "bias"), parameters marked `_no_weight_decay` (Mamba's A_log and D), and the parameters of
    `nn.Embedding` and torch normalization modules (a head tied to the embedding included)."""
    excluded = (nn.Embedding,) + (() if normalization_weight_decay else NORMALIZATION_MODULES)
    ids = set()
    for _, m in module.named_modules():
        for name, p in m.named_parameters():
            if ((not bias_weight_decay and name.endswith("bias")) or getattr(p, "_no_weight_decay", False)
                    or isinstance(m, excluded)):
                ids.add(id(p))
    return ids


def param_groups(model: nn.Module, bias_weight_decay: bool = False,
                 normalization_weight_decay: bool = False) -> list[dict]:
    """Optimizer parameter groups as the reference builds them: the backbone's (a Composer model's `backbone`, such
    as `DnaLM`'s or `SequenceClassifier`'s; else all of `model`) `no_weight_decay` parameters in a group with
    weight_decay 0; parameters carrying an `_optim` dict of overrides (HyenaDNA's filter: own lr / no weight decay)
    one group per distinct dict; everything else (a fine-tuning head included, as the reference's decoder) in the
    first group, with the optimizer's settings. As in the reference, the no-decay rule replaces an `_optim` dict
    (HyenaDNA's filter biases keep no weight decay, and the optimizer's lr)."""
    backbone = model.backbone if isinstance(model, ComposerModel) and hasattr(model, "backbone") else model
    no_decay = no_weight_decay(backbone, bias_weight_decay, normalization_weight_decay)
    plain, special = [], {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        hp = {"weight_decay": 0.0} if id(p) in no_decay else getattr(p, "_optim", None)
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
    bias_weight_decay: bool = False,
    normalization_weight_decay: bool = False,
) -> Trainer:
    """Fit `model` on `train_dataloader` with `trainer(**everything else)`.

    Args:
        model: a ComposerModel (e.g. `DnaLM`).
        train_dataloader / eval_dataloader: built dataloaders.
        optimizer: factory taking parameter groups (e.g. `functools.partial(torch.optim.AdamW, lr=...)`).
        trainer: factory for `composer.Trainer` holding duration, schedulers, algorithms, callbacks, precision,
            checkpointing; the model, data and optimizer are added here.
        bias_weight_decay / normalization_weight_decay: decay the backbone's biases / normalization weights too
            (the reference's `train.optimizer_param_grouping`; both off there and by default, see `param_groups`).

    A run that autoresumes at or past its `max_duration` is not fitted again: a one-line note is printed and the
    Trainer returned as loaded. A checkpoint that does not fit the model (the run's configuration changed) is a
    CheckpointMismatchError, an argument Composer rejects a TrainerArgumentError (one line each).
    """
    try:
        fit = trainer(model=model, train_dataloader=train_dataloader, eval_dataloader=eval_dataloader,
                      optimizers=optimizer(param_groups(model, bias_weight_decay, normalization_weight_decay)))
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

"""Checkpoint selection for fine-tuning: keep the weights of the best validation evaluation, then score the test
split once with them.

The reference (`train.cross_validation: true` in DNA-xLSTM/Caduceus `train.py`) does the same with a Lightning
ModelCheckpoint on the monitored validation metric, then `trainer.validate(ckpt_path=best)` on the test loader;
its validation metrics are per-batch averages (see `dnax.models.classification_metrics`), here they are computed
over the whole split. After every evaluation of the validation evaluator, the headline metric (e.g. MCC) decides
whether the current weights are the best so far (ties keep the earlier); at the end of `fit` the best weights are
loaded back into the model and the test split is evaluated exactly once. The test split is never seen before
that, so it cannot influence the choice.

Files in the run directory (all written atomically):
    best_model.pt    state dict of the model at the best evaluation
    results.json     {"task", "seed", "lr", "metric", "best_epoch", "best_batch", "val": {...}, "test": {...},
                      "history": [{"epoch", "batch", <val metrics>}, ...]}
"""
from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable

import torch
from composer.core import Callback, State
from composer.core.precision import get_precision_context
from composer.loggers import Logger
from composer.utils import dist
from torch.utils.data import DistributedSampler

from dnax.atomic import atomic_write_bytes, atomic_write_text
from dnax.models.classification_metrics import HEADLINE

BEST_WEIGHTS, RESULTS = "best_model.pt", "results.json"


def _task_name(task: Any) -> str | None:
    if task is None or isinstance(task, str):
        return task
    return getattr(task, "name", str(task))


class SelectBestAndTest(Callback):
    """Track `metric` on the `evaluator_label` evaluations, keep the best weights, test them once after fit.

    Args:
        test_dataloader: the test split (iterated once, at the end of fit); None skips testing.
        metric: the headline metric: a task metric ("mcc", "f1", "accuracy") or a metric name ("MCC", ...).
        folder: run directory; `{run_name}` is replaced by the trainer's run name.
        task: the task (name or TaskSpec) recorded in results.json.
        evaluator_label: the validation evaluator's label (Composer's default for a plain eval dataloader: "eval").
    """

    def __init__(self, test_dataloader: Iterable | None = None, *, metric: str = "accuracy",
                 folder: str = "runs/{run_name}", task: Any = None, evaluator_label: str = "eval"):
        self.test_dataloader = test_dataloader
        self.metric = HEADLINE.get(metric, metric)
        self.folder_template, self.folder = folder, None
        self.task, self.evaluator_label = _task_name(task), evaluator_label
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_batch: int | None = None
        self.history: list[dict[str, float]] = []
        self.test_metrics: dict[str, float] | None = None

    # -- checkpointed state (autoresume continues the selection) ---------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_batch": self.best_batch,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.best_batch, self.history = state.get("best_batch"), list(state.get("history", []))

    # -- Composer hooks ---------------------------------------------------------------------------------------------
    def init(self, state: State, logger: Logger) -> None:
        self.folder = Path(self.folder_template.format(run_name=state.run_name))

    def eval_end(self, state: State, logger: Logger) -> None:
        if state.dataloader_label != self.evaluator_label:
            return
        metrics = state.eval_metrics.get(self.evaluator_label, {})
        if self.metric not in metrics:
            raise ValueError(f"SelectBestAndTest: evaluator {self.evaluator_label!r} has no metric {self.metric!r} "
                             f"(has {', '.join(metrics) or 'none'})")
        values = {name: float(m.compute()) for name, m in metrics.items()}
        epoch, batch = int(state.timestamp.epoch), int(state.timestamp.batch)
        self.history.append({"epoch": epoch, "batch": batch, **values})
        value = values[self.metric]
        if not math.isnan(value) and (self.best is None or value > self.best):
            self.best, self.best_epoch, self.best_batch = value, epoch, batch
            if dist.get_global_rank() == 0:
                buf = io.BytesIO()
                torch.save({k: v.detach().cpu() for k, v in _unwrap(state.model).state_dict().items()}, buf)
                atomic_write_bytes(self.folder / BEST_WEIGHTS, buf.getvalue())
            dist.barrier()

    def fit_end(self, state: State, logger: Logger) -> None:
        best_path = self.folder / BEST_WEIGHTS
        if self.best is not None and best_path.is_file():
            _unwrap(state.model).load_state_dict(torch.load(best_path, map_location="cpu"))
        if self.test_dataloader is not None:
            self.test_metrics = evaluate(state, self.test_dataloader)
        if self.test_metrics:  # None or {}: no test split, or an empty one (a custom task without a test file)
            logger.log_metrics({f"metrics/test/{k}": v for k, v in self.test_metrics.items()})
        if dist.get_global_rank() == 0:
            atomic_write_text(self.folder / RESULTS, json.dumps(self.results(state), indent=2) + "\n")

    def results(self, state: State) -> dict[str, Any]:
        best = next((h for h in self.history if h["batch"] == self.best_batch), None)
        val = {k: v for k, v in best.items() if k not in ("epoch", "batch")} if best else None
        optimizer = state.optimizers[0] if state.optimizers else None
        return {"task": self.task, "seed": state.rank_zero_seed,
                "lr": optimizer.defaults.get("lr") if optimizer is not None else None,
                "metric": self.metric, "best_epoch": self.best_epoch, "best_batch": self.best_batch,
                "val": val, "test": self.test_metrics or None, "history": self.history}


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The ComposerModel inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def real_samples(dataloader: Iterable) -> int | None:
    """How many of this process's samples are real, when `dataloader` has a padded `DistributedSampler` (the last
    `total_size - len(dataset)` processes each get one repeated example at the end of their share), else None."""
    sampler = getattr(dataloader, "sampler", None)
    if not isinstance(sampler, DistributedSampler) or getattr(dataloader, "drop_last", False):
        return None
    padding = sampler.total_size - len(sampler.dataset)
    return len(sampler) - int(sampler.rank >= sampler.num_replicas - padding)


def evaluate(state: State, dataloader: Iterable) -> dict[str, float]:
    """Every eval metric of `state.model` over the whole `dataloader` (fresh metric instances), in eval mode; {}
    when the dataloader has no examples (metrics of nothing would read as a score of 0).

    Under torch.distributed each process scores its share and torchmetrics sums (or gathers) the metric states
    across processes in `compute()`; the examples a `DistributedSampler` repeats to even out the shares are dropped
    (as Composer's evaluation loop does), so each example counts once."""
    model = _unwrap(state.model)
    metrics = {name: state.device.module_to_device(copy.deepcopy(m)) for name, m in model.get_metrics(False).items()}
    for m in metrics.values():
        m.reset()
    remaining = real_samples(dataloader)
    seen = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), get_precision_context(state.precision):
            for batch in dataloader:
                if remaining is not None:
                    size = len(batch["labels"])
                    if remaining < size:
                        batch = {k: v[:remaining] for k, v in batch.items()}
                    remaining -= min(size, remaining)
                    if not len(batch["labels"]):
                        continue
                seen += len(batch["labels"])
                batch = state.device.batch_to_device(batch)
                outputs = model.eval_forward(batch)
                for m in metrics.values():
                    model.update_metric(batch, outputs, m)
    finally:
        model.train(was_training)
    dataset = getattr(dataloader, "dataset", None)  # the whole split (every process): all or none return early
    if (len(dataset) if dataset is not None else seen) == 0:
        return {}
    return {name: float(m.compute()) for name, m in metrics.items()}

"""Run artifacts (a metrics CSV, a loss-curve PNG, a one-line summary after every evaluation) and fault handling
(a NaN/inf loss guard; exact RNG restoration on a mid-epoch resume; interrupted checkpoint writes set aside).

`RunReport` is a Composer `LoggerDestination`: it receives every metric Composer logs (train loss each batch,
evaluation metrics) and keeps the files in the run directory current. Files are replaced atomically.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from composer.core import Callback, Event, State
from composer.loggers import Logger, LoggerDestination
from composer.utils import dist, reproducibility

from dnax.atomic import atomic_write_bytes
from dnax.plotting import png_bytes, subplots

TRAIN_LOSS = "loss/train/total"
EVAL_LOSS = "metrics/eval/LanguageCrossEntropy"
EVAL_ACC = "metrics/eval/MaskedAccuracy"
BASELINES = {"metrics/eval/BaselineOrder0": "order-0", "metrics/eval/BaselineOrder0Copy": "order-0 + copy"}


class RunReport(LoggerDestination):
    """Writes `metrics.csv` (step,name,value; also at every checkpoint) and `loss_curve.png` into `folder`, and
    prints each evaluation.

    Args:
        folder: run directory; `{run_name}` is replaced by the trainer's run name.
    """

    def __init__(self, folder: str = "runs/{run_name}"):
        self.folder_template = folder
        self.folder: Path | None = None
        self.rows: list[tuple[int, str, float]] = []
        self.max_batches: int | None = None
        self._restored: list[tuple[int, str, float]] | None = None

    # -- Composer hooks ---------------------------------------------------------------------------------------
    def init(self, state: State, logger: Logger) -> None:
        self.folder = Path(self.folder_template.format(run_name=state.run_name))

    def state_dict(self) -> dict[str, Any]:
        """The metric history travels in every checkpoint, so a resumed run continues it exactly."""
        return {"rows": [list(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = [(int(s), str(n), float(v)) for s, n, v in state.get("rows", [])]

    def fit_start(self, state: State, logger: Logger) -> None:
        step = int(state.timestamp.batch)
        existing = self.folder / "metrics.csv"
        if self._restored is not None:  # resumed from a checkpoint: its history up to that checkpoint
            self.rows = [r for r in self._restored if r[0] <= step]
            self._restored = None
        elif existing.exists():  # a checkpoint without that history: the run directory's file
            with open(existing, newline="") as f:
                self.rows = [(int(s), n, float(v)) for s, n, v in list(csv.reader(f))[1:] if int(s) <= step]
        if state.max_duration is not None and state.max_duration.unit.name == "BATCH":
            self.max_batches = int(state.max_duration.value)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for name, value in metrics.items():
            try:
                self.rows.append((int(step or 0), name, float(value)))
            except (TypeError, ValueError):
                continue

    def eval_end(self, state: State, logger: Logger) -> None:
        step = int(state.timestamp.batch)
        if dist.get_global_rank() == 0:
            print(self.summary_line(step), flush=True)
            self._write_files()

    def fit_end(self, state: State, logger: Logger) -> None:
        if dist.get_global_rank() == 0:
            self._write_files()

    def batch_checkpoint(self, state: State, logger: Logger) -> None:
        """Keep metrics.csv as current as the checkpoints, so a resumed run has the killed attempt's history."""
        if dist.get_global_rank() == 0 and self.folder is not None:
            self._write_files(plot=False)

    # -- helpers ------------------------------------------------------------------------------------------------
    def latest(self, name: str) -> float | None:
        values = [v for _, n, v in self.rows if n == name]
        return values[-1] if values else None

    def summary_line(self, step: int) -> str:
        total = f"/{self.max_batches}" if self.max_batches else ""
        parts = [f"step {step}{total}"]
        train = [v for s, n, v in self.rows if n == TRAIN_LOSS and s > step - 20]
        if train:
            parts.append(f"train loss {sum(train) / len(train):.4f}")
        for name, label in [(EVAL_LOSS, "val loss"), *BASELINES.items(), (EVAL_ACC, "val acc")]:
            value = self.latest(name)
            if value is not None and not math.isnan(value):
                parts.append(f"{label} {value:.4f}")
        return " | ".join(parts)

    def _write_files(self, plot: bool = True) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["step", "name", "value"])
        writer.writerows(self.rows)
        atomic_write_bytes(self.folder / "metrics.csv", buf.getvalue().encode())
        if plot and any(n == TRAIN_LOSS for _, n, _ in self.rows):
            atomic_write_bytes(self.folder / "loss_curve.png", plot_loss_curve(self.rows))


def plot_loss_curve(rows: list[tuple[int, str, float]]) -> bytes:
    """PNG bytes: train loss (raw and smoothed), validation loss and the baselines, against step."""
    def series(name):
        pts = sorted((s, v) for s, n, v in rows if n == name and not math.isnan(v))
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, ax = subplots(figsize=(7, 4.2), dpi=120)
    steps, loss = series(TRAIN_LOSS)
    ax.plot(steps, loss, color="tab:blue", alpha=0.25, lw=0.8)
    if loss:
        k = max(1, len(loss) // 25)
        smooth = [sum(loss[max(0, i - k + 1): i + 1]) / len(loss[max(0, i - k + 1): i + 1]) for i in range(len(loss))]
        ax.plot(steps, smooth, color="tab:blue", label="train loss")
    steps, val = series(EVAL_LOSS)
    if val:
        ax.plot(steps, val, "o-", color="tab:red", label="validation loss")
    for (name, label), color in zip(BASELINES.items(), ["tab:gray", "tab:green"]):
        _, vals = series(name)
        if vals:
            ax.axhline(vals[-1], ls="--", color=color, lw=1, label=f"{label} baseline ({vals[-1]:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png_bytes(fig)


# -- faults ---------------------------------------------------------------------------------------------------------
class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite (raised by `NonFiniteLossGuard(action="stop")`)."""


def _provenance(batch: Any) -> list[tuple[int, int, bool]]:
    """(chrom_index, start, reverse_complemented) of each window of a pretraining batch; [] for other batches."""
    if not isinstance(batch, dict) or "chrom_index" not in batch or "start" not in batch:
        return []
    n = len(batch["chrom_index"])
    flipped = batch.get("reverse_complemented")
    return [(int(batch["chrom_index"][i]), int(batch["start"][i]), bool(flipped[i]) if flipped is not None else False)
            for i in range(n)]


class NonFiniteLossGuard(Callback):
    """Detects a NaN/inf training loss on any process and stops the run or skips the optimizer update.

    The loss of every microbatch is checked after it is computed (`Event.AFTER_LOSS`); after the backward passes
    of the batch (`Event.AFTER_TRAIN_BATCH`, before the optimizer step) the processes agree on whether any saw a
    non-finite loss, and then:

    * `action="stop"`: every process raises `NonFiniteLossError` naming the step, the loss and the offending
      windows (`chrom_index` into the conversion manifest's `chroms`, 0-based `start`, reverse-complemented or not).
    * `action="skip"`: every gradient is set to None, so the optimizer leaves every parameter and its state
      untouched (PyTorch optimizers skip parameters without a gradient); the learning-rate schedule still advances.
      Each skipped step is printed and logged as `nonfinite/skipped_steps`; after `max_skips` skipped steps the
      run stops as with "stop".
    """

    def __init__(self, action: Literal["stop", "skip"] = "stop", max_skips: int = 100):
        if action not in ("stop", "skip"):
            raise ValueError(f"NonFiniteLossGuard action must be 'stop' or 'skip', got {action!r}")
        self.action, self.max_skips = action, int(max_skips)
        self.skipped: list[int] = []
        self._bad: list[tuple[float, list[tuple[int, int, bool]]]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": list(self.skipped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = list(state.get("skipped", []))

    def run_event(self, event: Event, state: State, logger: Logger) -> None:
        if event == Event.AFTER_LOSS:
            losses = [v for v in (state.loss.values() if isinstance(state.loss, dict) else _as_tuple(state.loss))]
            if not all(bool(torch.isfinite(v.detach()).all()) for v in losses):
                value = float(torch.stack([v.detach().float().mean() for v in losses]).sum())
                self._bad.append((value, _provenance(state.batch)))
        elif event == Event.AFTER_TRAIN_BATCH:
            self._after_train_batch(state, logger)

    def _after_train_batch(self, state: State, logger: Logger) -> None:
        flag = state.device.tensor_to_device(torch.tensor([1 if self._bad else 0], dtype=torch.int64))
        dist.all_reduce(flag, reduce_operation="MAX")
        if not int(flag.item()):
            return
        reports = dist.all_gather_object(self._bad)  # only when some process saw one: all agree to be here
        self._bad = []
        step = int(state.timestamp.batch)
        where = "; ".join(
            f"rank {rank}: loss {loss} on windows (chrom_index, start, rc) {windows or 'without provenance'}"
            for rank, bad in enumerate(reports) for loss, windows in bad)
        message = f"non-finite training loss at step {step} ({where})"
        if self.action == "stop" or len(self.skipped) >= self.max_skips:
            limit = f"; {self.max_skips} steps already skipped" if self.action == "skip" else ""
            raise NonFiniteLossError(message + limit)
        for p in state.model.parameters():
            p.grad = None
        self.skipped.append(step)
        logger.log_metrics({"nonfinite/skipped_steps": len(self.skipped)})
        if dist.get_global_rank() == 0:
            print(f"NonFiniteLossGuard: skipped the update of {message}", flush=True)


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


class MidEpochRNGRestore(Callback):
    """Restores every process's RNG state when a run resumes in the middle of an epoch.

    Composer 0.32 restores the checkpoint's RNG state only at an epoch boundary or while it spins the dataloader
    forward; a dataloader that resumes itself (a streaming dataset: `state.dataset_resumption`) skips the spin, so
    after a mid-epoch resume the random draws (MLM masks, reverse-complement flips) differ from an uninterrupted run.
    This callback saves the RNG states of all processes with each checkpoint and, after a mid-epoch resume,
    restores them just before the first batch is read (after the dataloader iterator exists: creating it draws
    from the RNG, as it did before that point in the uninterrupted run).
    """

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": reproducibility.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = state.get("rng")

    def fit_start(self, state: State, logger: Logger) -> None:
        if int(state.timestamp.batch_in_epoch) == 0:
            self._pending = None  # Composer restores the RNG itself at an epoch boundary

    def before_dataloader(self, state: State, logger: Logger) -> None:
        if self._pending is not None:
            if len(self._pending) == dist.get_world_size():
                reproducibility.load_rng_state(self._pending)
            else:
                warnings.warn(f"MidEpochRNGRestore: checkpoint has RNG states of {len(self._pending)} processes, "
                              f"this run has {dist.get_world_size()}: random draws restart from the seed",
                              RuntimeWarning, stacklevel=2)
            self._pending = None


class SetAsideInterruptedCheckpoints(Callback):
    """Moves checkpoints newer than the step a run (re)starts from into `<folder>/interrupted/` before Composer's
    checkpoint saver checks the folder.

    Composer writes a checkpoint in place and repoints the `latest` link only after the write, so a process killed
    while saving leaves a partial (or complete but never linked) newer checkpoint beside an intact `latest`.
    Autoresume loads `latest`, but with `save_overwrite=False` the saver then refuses to start because the newer
    file "may conflict with a future checkpoint". Such files are the interrupted attempt's (the run resumes from
    `latest`, older), so they are set aside, not deleted. Only acts when the run resumed (`latest` exists) or when
    no checkpoint was ever completed (no `latest`, the run starts at step 0).
    """

    def __init__(self, folder: str = "runs/{run_name}/checkpoints", latest: str = "latest-rank0.pt"):
        self.folder, self.latest = folder, latest

    def fit_start(self, state: State, logger: Logger) -> None:
        if dist.get_local_rank() == 0:
            folder = Path(self.folder.format(run_name=state.run_name))
            step = int(state.timestamp.batch)
            resumed = (folder / self.latest).is_symlink() and step > 0
            if folder.is_dir() and (resumed or (step == 0 and not (folder / self.latest).is_symlink())):
                for entry in sorted(folder.iterdir()):
                    match = re.match(r"ep\d+-ba(\d+)(?:-rank\d+)?(?:\.pt)?$", entry.name)
                    if match and int(match.group(1)) > step and not entry.is_symlink():
                        aside = folder / "interrupted" / entry.name
                        aside.parent.mkdir(exist_ok=True)
                        os.replace(entry, aside)
                        warnings.warn(f"{entry} is newer than step {step}, where this run starts: an interrupted "
                                      f"save; moved to {aside}", RuntimeWarning, stacklevel=2)
        dist.barrier()

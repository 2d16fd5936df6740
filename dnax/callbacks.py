"""Run artifacts: a metrics CSV, a loss-curve PNG and a one-line summary after every evaluation.

`RunReport` is a Composer `LoggerDestination`: it receives every metric Composer logs (train loss each batch,
evaluation metrics) and keeps the files in the run directory current. Files are replaced atomically.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from composer.core import State
from composer.loggers import Logger, LoggerDestination
from composer.utils import dist

from dnax.atomic import atomic_write_bytes

TRAIN_LOSS = "loss/train/total"
EVAL_LOSS = "metrics/eval/LanguageCrossEntropy"
EVAL_ACC = "metrics/eval/MaskedAccuracy"
BASELINES = {"metrics/eval/BaselineOrder0": "order-0", "metrics/eval/BaselineOrder0Copy": "order-0 + copy"}


class RunReport(LoggerDestination):
    """Writes `metrics.csv` (step,name,value) and `loss_curve.png` into `folder`, and prints each evaluation.

    Args:
        folder: run directory; `{run_name}` is replaced by the trainer's run name.
    """

    def __init__(self, folder: str = "runs/{run_name}"):
        self.folder_template = folder
        self.folder: Path | None = None
        self.rows: list[tuple[int, str, float]] = []
        self.max_batches: int | None = None

    # -- Composer hooks ---------------------------------------------------------------------------------------
    def init(self, state: State, logger: Logger) -> None:
        self.folder = Path(self.folder_template.format(run_name=state.run_name))

    def fit_start(self, state: State, logger: Logger) -> None:
        step = int(state.timestamp.batch)
        existing = self.folder / "metrics.csv"
        if existing.exists():  # resumed run: keep history up to the checkpoint we resumed from
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

    def _write_files(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["step", "name", "value"])
        writer.writerows(self.rows)
        atomic_write_bytes(self.folder / "metrics.csv", buf.getvalue().encode())
        if any(n == TRAIN_LOSS for _, n, _ in self.rows):
            atomic_write_bytes(self.folder / "loss_curve.png", plot_loss_curve(self.rows))


def plot_loss_curve(rows: list[tuple[int, str, float]]) -> bytes:
    """PNG bytes: train loss (raw and smoothed), validation loss and the baselines, against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(name):
        pts = sorted((s, v) for s, n, v in rows if n == name and not math.isnan(v))
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

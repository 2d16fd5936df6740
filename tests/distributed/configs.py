"""Experiment configs for the multi-process tests (resolved by import path: `tests.distributed.configs.<fn>`).

`SampleLog` records which windows each process trained on, so tests can check that a run saw the same samples
under another process layout or across a kill and resume.
"""
from __future__ import annotations

import os
from pathlib import Path

import fiddle as fdl
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist

from experiments import hg38_xlstm


class SampleLog(Callback):
    """Appends `step rank chrom_index start` per trained window to `<folder>/samples-<pid>.txt` (one file per
    process and attempt, flushed every batch so a killed process leaves its lines)."""

    def __init__(self, folder: str = "runs/{run_name}"):
        self.folder = folder

    def after_dataloader(self, state: State, logger: Logger) -> None:
        path = Path(self.folder.format(run_name=state.run_name)) / f"samples-{os.getpid()}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        step, rank = int(state.timestamp.batch), dist.get_global_rank()
        with open(path, "a") as f:
            for c, s in zip(state.batch["chrom_index"].tolist(), state.batch["start"].tolist()):
                f.write(f"{step} {rank} {c} {s}\n")


def _logged(cfg: fdl.Buildable) -> fdl.Buildable:
    cfg.trainer.callbacks = [*cfg.trainer.callbacks, fdl.Config(SampleLog)]
    return cfg


def mlm() -> fdl.Buildable:
    """The MLM xLSTM recipe (random masks and reverse-complement flips), windows logged."""
    return _logged(hg38_xlstm.hg38_xlstm())

"""Fine-tuning on your own files: a GUE task (DNABERT-2's Genome Understanding Evaluation) read as a custom task
(`dnax.data.downstream.custom_task`), default `mouse/3` (mouse TF binding sites, 101 bp); the `task(...)` fiddler
picks another binary task with a train split: tf/0-4, mouse/0,2,3,4, prom/prom_core_{all,notata,tata},
prom/prom_300_tata.

Each task folder holds `train`, `dev` and `test` CSV files (`sequence,label`); `dev` is the validation split, so no
split is drawn from the training data. Recipe: the Genomic Benchmarks one (`experiments.downstream.finetune`: xLSTM
d_model 128, PH with RC augmentation, 10 epochs, batch 64, AdamW lr 6e-4), headline MCC (as GUE reports). The data
folder is `$DNAX_GUE_DIR`, else `../shared/data/gue` beside the checkout, else `/work/shared/data/gue`.

    python -m dnax.run experiments.gue sample "from_run('runs/<pretraining run>')"
    python -m dnax.run experiments.gue "task('tf/0')" sample cnn
    python -m dnax.sweep experiments.gue --seeds 1-3 --lrs 6e-4 sample
"""
from __future__ import annotations

import os
from pathlib import Path

import fiddle as fdl

from dnax import fiddlers as _fiddlers
from dnax.data.downstream import TaskSpec, custom_task
from experiments.common import experiment
from experiments.downstream import LR_SWEEP, finetune, use_task
from experiments.downstream import (  # noqa: F401  fiddlers for dnax.run
    cnn, custom, data_dir, frozen, from_reference, from_run, lr, sample, seed, tiny)
from experiments.hg38_xlstm import mlstm_backbone

SWEEP = {"seeds": (1, 2, 3), "lrs": LR_SWEEP}

#: task folder under the GUE root -> sequence length; the binary tasks that ship a train split
TASKS = {
    **{f"tf/{i}": 101 for i in range(5)},
    **{f"mouse/{i}": 101 for i in (0, 2, 3, 4)},
    **{f"prom/{name}": 70 for name in ("prom_core_all", "prom_core_notata", "prom_core_tata")},
    "prom/prom_300_tata": 300,
}


def gue_root() -> Path:
    """The GUE data folder (see the module docstring)."""
    if os.environ.get("DNAX_GUE_DIR"):
        return Path(os.environ["DNAX_GUE_DIR"])
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gue"
    return beside if beside.is_dir() else Path("/work/shared/data/gue")


def _task_config(folder: str) -> fdl.Config:
    if folder not in TASKS:
        raise _fiddlers.FiddlerError(f"unknown GUE task {folder!r} (known: {', '.join(TASKS)})")
    return fdl.Config(custom_task, "gue_" + folder.replace("/", "_"), str(gue_root() / folder),
                      max_length=TASKS[folder], metric="mcc", num_classes=2)


@experiment
def gue() -> fdl.Partial:
    """GUE mouse/3 (mouse TF binding sites, 101 bp) from local CSV files: xLSTM-PH fine-tuning, headline MCC;
    expected above the CNN baseline (`cnn` fiddler) and, pretrained (`from_run`), above the same model from scratch."""
    folder = "mouse/3"
    spec = TaskSpec("gue_mouse_3", "custom", TASKS[folder], "mcc", 2)
    return finetune(_task_config(folder), spec, mlstm_backbone(), epochs=10, batch_size=64, lr=6e-4, rc_mode="ph",
                    rc_aug=True)


def task(cfg: fdl.Buildable, folder: str) -> None:
    """Another GUE task, e.g. task('tf/0') (a key of `TASKS`)."""
    use_task(cfg, _task_config(folder))

"""Fine-tuning under `dnax-launch` (2 processes, gloo on CPU): the validation and test metrics in `results.json` are
whole-split metrics, each example counted once, equal to a direct numpy computation from one process scoring the
selected checkpoint (`best_model.pt`) over the whole split.

The GUE fixture is cut to odd split sizes (validation 31, test 29), so each split's shares are evened out with one
repeated example that must not be counted; the test split ends in a partial batch.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import fiddle as fdl
import numpy as np
import pytest
import torch

from dnax import run as cli
from dnax.data.downstream import custom_task, task_dataloader
from experiments.downstream import TINY_TASK_DIR

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"train": 64, "dev": 31, "test": 29}
# one epoch: 64 training examples in batches of 8 per process are 4 steps when the 2 processes share them (8 if each
# read them all); evaluations after steps 2 and 4 over the whole validation split
TOKENS = ["tiny", "lr(5e-3)", "trainer.max_duration='1ep'", "trainer.eval_interval='2ba'",
          "trainer.eval_subset_num_batches=-1", "trainer.save_interval='1ep'"]


def _task_dir(folder: Path) -> Path:
    folder.mkdir()
    for split, n in SIZES.items():
        lines = (TINY_TASK_DIR / f"{split}.csv").read_text().splitlines()
        (folder / f"{split}.csv").write_text("\n".join(lines[:n + 1]) + "\n")  # header + n rows
    return folder


def _metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The binary-task metrics, straight from their definitions."""
    pred = logits.argmax(1)
    tp, tn = np.sum((pred == 1) & (labels == 1)), np.sum((pred == 0) & (labels == 0))
    fp, fn = np.sum((pred == 1) & (labels == 0)), np.sum((pred == 0) & (labels == 1))
    denom = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    f1_pos, f1_neg = 2 * tp / (2 * tp + fp + fn), 2 * tn / (2 * tn + fn + fp)
    logp = logits - np.logaddexp(logits[:, 0], logits[:, 1])[:, None]
    p1 = np.exp(logp[:, 1])
    pos, neg = p1[labels == 1], p1[labels == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return {"Accuracy": float(np.mean(pred == labels)), "MCC": float((tp * tn - fp * fn) / denom) if denom else 0.0,
            "F1": float(f1_pos), "MacroF1": float((f1_pos + f1_neg) / 2), "AUROC": float(pairs.mean()),
            "CrossEntropy": float(-np.mean(logp[np.arange(len(labels)), labels]))}


def _score(model, task, split: str) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = [], []
    with torch.no_grad():
        for batch in task_dataloader(task, split, batch_size=_size(split), max_length=101):
            logits.append(model(batch).numpy())
            labels.append(batch["labels"].numpy())
    return np.concatenate(logits).astype(np.float64), np.concatenate(labels)


def _size(split: str) -> int:
    return SIZES["dev" if split == "valid" else split]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("finetune_ddp")
    task_dir = _task_dir(work / "task")
    tokens = [*TOKENS, f"train_dataloader.task.path={str(task_dir)!r}", "trainer.run_name='ddp'"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dnax.launch", "-n", "2", "-m", "dnax.run", "experiments.gue", *tokens]
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work / "runs" / "ddp", task_dir, tokens


def test_two_process_metrics_equal_whole_split_metrics(ddp_run):
    run_dir, task_dir, tokens = ddp_run
    results = json.loads((run_dir / "results.json").read_text())
    fn, module = cli.resolve_experiment("experiments.gue")
    cfg = cli.mutate(fn(), tokens, module)
    model = fdl.build(cfg.model)
    model.load_state_dict(torch.load(run_dir / "best_model.pt", map_location="cpu"))
    model.eval()
    task = custom_task("gue_mouse3_tiny", str(task_dir), max_length=101, metric="mcc", num_classes=2)
    for split, key in (("valid", "val"), ("test", "test")):
        logits, labels = _score(model, task, split)
        assert len(labels) == _size(split)
        expected = _metrics(logits, labels)
        assert results[key] == pytest.approx(expected, abs=1e-5), split
        # counting the repeated example (the first one of the split, on rank 1) would change the metrics
        with_repeat = _metrics(np.concatenate([logits, logits[:1]]), np.concatenate([labels, labels[:1]]))
        assert with_repeat["CrossEntropy"] != pytest.approx(expected["CrossEntropy"], abs=1e-5)
    assert [h["batch"] for h in results["history"]] == [2, 4]  # each process read its half of the training split

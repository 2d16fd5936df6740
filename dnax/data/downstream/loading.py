"""`load_task`: a task's train/valid/test examples as (sequence, class id), from the hub, disk or custom files.

Class ids are the positions of the class names in sorted order (numerically when every name is an integer), so they
do not depend on file or directory order. (The reference numbers Genomic Benchmarks classes in `Path.iterdir()` order,
which is file-system dependent.) The validation split is `val_fraction` of the training split, drawn with
`torch.utils.data.random_split(..., [val_fraction, 1 - val_fraction], generator=manual_seed(val_seed))` as the
reference does for GB (it uses 10 %); the official test split is never touched. A custom task with its own
validation file (e.g. GUE `dev`) uses that file instead.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from dnax.data.downstream import hub
from dnax.data.downstream.readers import (FASTA_SUFFIXES, PARQUET_SUFFIXES, TABLE_DELIMITERS, Rows,
                                          read_fasta_labelled, read_genomic_benchmarks_layout, read_labelled)
from dnax.data.downstream.tasks import CustomTask, Metric, TaskDataError, TaskSpec, resolve_task
from dnax.data.sources import cache_root

Source = Literal["auto", "hub", "disk"]
Example = tuple[str, int]


@dataclass
class TaskData:
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    class_names: list[str]  # class id -> name


def sorted_class_names(labels) -> list[str]:
    """Distinct label names, sorted numerically when all are integers, else as strings."""
    names = set(labels)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def split_validation(examples: list[Example], val_fraction: float,
                     val_seed: int) -> tuple[list[Example], list[Example]]:
    """(train, valid): `val_fraction` of `examples` drawn by `val_seed`, as the reference's `random_split`."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return list(examples), []
    valid_idx, train_idx = torch.utils.data.random_split(
        range(len(examples)), [val_fraction, 1.0 - val_fraction], generator=torch.Generator().manual_seed(val_seed))
    return [examples[i] for i in train_idx], [examples[i] for i in valid_idx]


def _index(rows: Rows, ids: dict[str, int], where: str) -> list[Example]:
    out = []
    for seq, label, line in rows:
        if label not in ids:
            raise TaskDataError(f"{where}{f':{line}' if line else ''}: label {label!r} does not occur in the "
                                f"training data (classes: {', '.join(ids)})")
        out.append((seq, ids[label]))
    return out


def _assemble(task: TaskSpec, train: Rows, test: Rows, valid: Rows | None, where: dict[str, str],
              val_fraction: float, val_seed: int) -> TaskData:
    class_names = sorted_class_names(label for _, label, _ in train)
    if task.collection != "custom" and len(class_names) != task.num_classes:
        raise TaskDataError(f"{where['train']}: task {task.name!r} has {task.num_classes} classes but the training "
                            f"data has {len(class_names)} ({', '.join(class_names)})")
    if len(class_names) < 2:
        raise TaskDataError(f"{where['train']}: every training label is {class_names[0]!r}; a classification task "
                            "needs at least two classes (is the label column the right one?)")
    ids = {name: i for i, name in enumerate(class_names)}
    train_ex = _index(train, ids, where["train"])
    if valid is None:
        train_ex, valid_ex = split_validation(train_ex, val_fraction, val_seed)
    else:
        valid_ex = _index(valid, ids, where["valid"])
    return TaskData(train_ex, valid_ex, _index(test, ids, where["test"]), class_names)


def default_data_dir(task: TaskSpec) -> Path:
    """Where `source='disk'` looks without `data_dir`: `<cache>/<collection>` (the rebuild CLI's suggested --out)."""
    return cache_root() / task.collection


def _read_disk(task: TaskSpec, data_dir: Path) -> dict[str, Rows]:
    task_dir = data_dir / task.name
    if task.collection == "genomic_benchmarks":
        return read_genomic_benchmarks_layout(task_dir)
    return {split: read_fasta_labelled(task_dir / f"{split}.fna") for split in hub.SPLITS}


def _on_disk(task: TaskSpec, data_dir: Path) -> bool:
    task_dir = data_dir / task.name
    if task.collection == "genomic_benchmarks":
        return (task_dir / "train").is_dir()
    return (task_dir / "train.fna").is_file()


def _benchmark_rows(task: TaskSpec, source: Source, data_dir: Path) -> tuple[dict[str, Rows], str]:
    if source not in ("auto", "hub", "disk"):
        raise ValueError(f"source must be 'auto', 'hub' or 'disk', got {source!r}")
    if source in ("auto", "hub"):
        rows = hub.read_snapshot(task)
        if rows is not None:
            return rows, str(hub.snapshot_dir(task))
    if source == "disk" or (source == "auto" and _on_disk(task, data_dir)):
        return _read_disk(task, data_dir), str(data_dir / task.name)
    return hub.fetch_from_hub(task), str(hub.snapshot_dir(task))


@functools.lru_cache(maxsize=64)
def _load_cached(task: TaskSpec, source: Source, data_dir: str | None, val_fraction: float, val_seed: int) -> TaskData:
    if isinstance(task, CustomTask):
        read = functools.partial(read_labelled, sequence_column=task.sequence_column, label_column=task.label_column)
        valid = read(task.valid_path) if task.valid_path else None
        test = read(task.test_path) if task.test_path else []
        where = {"train": task.path, "valid": task.valid_path or "", "test": task.test_path or ""}
        return _assemble(task, read(task.path), test, valid, where, val_fraction, val_seed)
    rows, origin = _benchmark_rows(task, source, Path(data_dir) if data_dir else default_data_dir(task))
    where = {split: f"{origin} ({split})" for split in ("train", "valid", "test")}
    return _assemble(task, rows["train"], rows["test"], None, where, val_fraction, val_seed)


def load_task(task: TaskSpec | str, *, source: Source = "auto", data_dir: str | None = None,
              val_fraction: float = 0.1, val_seed: int = 0) -> TaskData:
    """The task's examples, cached in-process (the returned lists are shared: do not modify them).

    source: 'hub' (the dnax cache snapshot, else download), 'disk' (`data_dir`, default `<cache>/<collection>`:
    GB layout `<task>/{train,test}/<class>/<id>.txt`, NT `<task>/{train,test}.fna`), or 'auto' (the snapshot, else
    `data_dir` when the task is there, else download). Custom tasks always read their own files.
    """
    task = resolve_task(task)
    if isinstance(task, CustomTask):  # fields that do not change the data stay out of the cache key
        task = dataclasses.replace(task, name="", max_length=0, metric="mcc", num_classes=0)
    return _load_cached(task, source, str(data_dir) if data_dir is not None else None, float(val_fraction),
                        int(val_seed))


_SPLIT_NAMES = {"train": ("train",), "valid": ("dev", "valid", "validation", "val"), "test": ("test",)}
_SUFFIXES = sorted(TABLE_DELIMITERS) + sorted(PARQUET_SUFFIXES) + sorted(FASTA_SUFFIXES)


def _find_split_file(directory: Path, split: str) -> str | None:
    for stem in _SPLIT_NAMES[split]:
        for suffix in _SUFFIXES:
            for candidate in (directory / f"{stem}{suffix}", directory / f"{stem}{suffix}.gz"):
                if candidate.is_file():
                    return str(candidate)
    return None


def custom_task(name: str, path: str | Path, *, sequence_column: str = "sequence", label_column: str = "label",
                max_length: int, metric: Metric = "mcc", test_path: str | Path | None = None,
                valid_path: str | Path | None = None, num_classes: int | None = None) -> CustomTask:
    """A task from your own CSV/TSV (gz too), Parquet or FASTA (label in the header: `>id|label` or `label=...`).

    `path` is the training file, or a directory holding `train`, `dev`/`valid`/`val` and `test` files of any of those
    formats (e.g. a GUE task folder). Without a validation file, `load_task` splits one off the training data;
    without a test file the test split is empty.
    `num_classes`, when not given, is read from the training labels (which loads the files once).
    """
    path = Path(path)
    if path.is_dir():
        found = {split: _find_split_file(path, split) for split in _SPLIT_NAMES}
        if found["train"] is None:
            raise TaskDataError(f"{path}: no train file (train.csv/.tsv/.parquet/.fa, optionally .gz)")
        path_s, valid_s, test_s = found["train"], found["valid"], found["test"]
        valid_s = str(valid_path) if valid_path is not None else valid_s
        test_s = str(test_path) if test_path is not None else test_s
    else:
        if not path.is_file():
            raise TaskDataError(f"{path}: no such file")
        path_s = str(path)
        valid_s = str(valid_path) if valid_path is not None else None
        test_s = str(test_path) if test_path is not None else None
    if metric not in ("mcc", "f1", "accuracy"):
        raise ValueError(f"metric must be 'mcc', 'f1' or 'accuracy', got {metric!r}")
    task = CustomTask(name, "custom", int(max_length), metric, num_classes or 0, path=path_s,
                      sequence_column=sequence_column, label_column=label_column, test_path=test_s, valid_path=valid_s)
    if num_classes is None:
        task = dataclasses.replace(task, num_classes=len(load_task(task).class_names))
    return task

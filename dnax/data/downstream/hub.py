"""Benchmark tasks from the Hugging Face hub, kept as a snapshot in the dnax cache so later runs work offline.

    Genomic Benchmarks        katarinagresova/Genomic_Benchmarks_<task>          (columns seq, label; train/test)
    Nucleotide Transformer    InstaDeepAI/nucleotide_transformer_downstream_tasks (+ `_revised`)

For NT, `datasets.load_dataset(repo)` is tried first and filtered on its `task` column (a parquet export); where the
repository is the original script layout (which `datasets` >= 4 no longer runs), the task's raw files
`<task>/{train,test}.fna` (headers `>name|label`, the files the reference's loading script parses) are fetched with
`huggingface_hub`. Downloads go to `<cache>/huggingface`; the task's rows are then saved with `save_to_disk` under
`<cache>/downstream/<collection>/<task>` (columns sequence, label name) and read from there ever after, with no
network. With `HF_DATASETS_OFFLINE` or `HF_HUB_OFFLINE` set, a task not in that snapshot fails at once.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dnax.data.downstream.readers import Rows, check_sequence, read_fasta_labelled
from dnax.data.downstream.tasks import TaskDataError, TaskSpec
from dnax.data.sources import cache_root

HUB_REPOS = {
    "genomic_benchmarks": "katarinagresova/Genomic_Benchmarks_{name}",
    "nucleotide_transformer": "InstaDeepAI/nucleotide_transformer_downstream_tasks",
    "nucleotide_transformer_revised": "InstaDeepAI/nucleotide_transformer_downstream_tasks_revised",
}

# The hub copies of Genomic Benchmarks store bare integer labels. Names where the mapping is known: the binary
# enhancer/promoter/OCR tasks use 0 = negative, 1 = positive; human_ensembl_regulatory's 0/1/2 are promoter/enhancer/
# ocr (its per-label length ranges match the GB coordinate classes; shared/data/README.md section 4). The two demo
# tasks keep "0"/"1" (the mapping to coding/intergenomic and human/worm is not documented).
_BINARY = ("negative", "positive")
GB_HUB_LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "dummy_mouse_enhancers_ensembl": _BINARY,
    "human_enhancers_cohn": _BINARY,
    "human_enhancers_ensembl": _BINARY,
    "human_nontata_promoters": _BINARY,
    "human_ocr_ensembl": _BINARY,
    "human_ensembl_regulatory": ("promoter", "enhancer", "ocr"),
}

SPLITS = ("train", "test")


def snapshot_dir(task: TaskSpec) -> Path:
    return cache_root() / "downstream" / task.collection / task.name


def hub_offline() -> bool:
    return any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def read_snapshot(task: TaskSpec) -> dict[str, Rows] | None:
    """The task's saved rows, or None when there is no snapshot."""
    path = snapshot_dir(task)
    if not (path / "dataset_dict.json").exists():
        return None
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as e:
        raise TaskDataError(f"{path}: unreadable cached copy of task {task.name!r} ({type(e).__name__}); "
                            "delete the folder to fetch it again") from None
    return {split: [(seq, label, i) for i, (seq, label) in
                    enumerate(zip(saved[split]["sequence"], saved[split]["label"]), 1)] for split in SPLITS}


def write_snapshot(task: TaskSpec, splits: dict[str, Rows]) -> None:
    """Save the rows under `snapshot_dir(task)` atomically (a sibling temporary folder, then a rename)."""
    import datasets

    target = snapshot_dir(task)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{task.name}.", suffix=".tmp"))
    try:
        datasets.DatasetDict({
            split: datasets.Dataset.from_dict({"sequence": [r[0] for r in rows], "label": [r[1] for r in rows]})
            for split, rows in splits.items()
        }).save_to_disk(str(tmp / "data"))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "data", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rows_from_columns(task: TaskSpec, split: str, seqs, labels) -> Rows:
    names = GB_HUB_LABEL_NAMES.get(task.name) if task.collection == "genomic_benchmarks" else None
    rows: Rows = []
    for i, (seq, label) in enumerate(zip(seqs, labels), 1):
        where = f"hub task {task.name!r} {split} row {i}"
        if isinstance(label, str) and label.strip().lstrip("-").isdigit():
            label = int(label)
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < task.num_classes:
            raise TaskDataError(f"{where}: label {label!r} is not one of 0..{task.num_classes - 1}")
        rows.append((check_sequence(seq, where), names[label] if names else str(label), i))
    return rows


def _fetch_with_datasets(task: TaskSpec, repo: str, hf_cache: Path) -> dict[str, Rows]:
    import datasets

    loaded = datasets.load_dataset(repo, cache_dir=str(hf_cache))
    splits = {}
    for split in SPLITS:
        if split not in loaded:
            raise TaskDataError(f"hub dataset {repo} has no {split!r} split (splits: {', '.join(loaded)})")
        data = loaded[split]
        if "task" in data.column_names:
            data = data.filter(lambda name: name == task.name, input_columns="task")
        seq_col = "seq" if "seq" in data.column_names else "sequence"
        if len(data) == 0:
            raise TaskDataError(f"hub dataset {repo} has no rows for task {task.name!r} in split {split!r}")
        splits[split] = _rows_from_columns(task, split, data[seq_col], data["label"])
    return splits


def _fetch_nt_raw_files(task: TaskSpec, repo: str, hf_cache: Path) -> dict[str, Rows]:
    from huggingface_hub import hf_hub_download

    splits = {}
    for split in SPLITS:
        path = hf_hub_download(repo, f"{task.name}/{split}.fna", repo_type="dataset", cache_dir=str(hf_cache))
        rows = read_fasta_labelled(path)
        splits[split] = _rows_from_columns(task, split, [r[0] for r in rows], [r[1] for r in rows])
    return splits


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def fetch_from_hub(task: TaskSpec) -> dict[str, Rows]:
    """Download the task from the hub and snapshot it in the dnax cache. Raises a one-line TaskDataError when the hub
    cannot be reached (or offline mode is on)."""
    what_to_do = ("run once with network access to cache it, or pass data_dir=DIR with the Genomic Benchmarks layout "
                  "<task>/{train,test}/<class>/<id>.txt (build it with `python -m data_tools.genomic_benchmarks "
                  "rebuild`)" if task.collection == "genomic_benchmarks" else
                  "run once with network access to cache it, or pass data_dir=DIR holding <task>/{train,test}.fna")
    if hub_offline():
        raise TaskDataError(f"task {task.name!r} ({task.collection}) is not in the dnax cache ({snapshot_dir(task)}) "
                            f"and hub access is off (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE): {what_to_do}")
    repo = HUB_REPOS[task.collection].format(name=task.name)
    hf_cache = cache_root() / "huggingface"
    try:
        if task.collection == "genomic_benchmarks":
            splits = _fetch_with_datasets(task, repo, hf_cache)
        else:
            try:
                splits = _fetch_with_datasets(task, repo, hf_cache)
            except TaskDataError:
                raise
            except Exception:
                splits = _fetch_nt_raw_files(task, repo, hf_cache)
    except TaskDataError:
        raise
    except Exception as e:
        raise TaskDataError(f"task {task.name!r}: cannot fetch {repo} from the Hugging Face hub ({_one_line(e)}); "
                            f"{what_to_do}") from None
    write_snapshot(task, splits)
    return splits

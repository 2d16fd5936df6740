"""The downstream classification tasks: what each one is (collection, reference max length, headline metric, classes).

Max lengths and metrics are those of the reference configs (Caduceus/DNA-xLSTM `configs/dataset/genomic_benchmark.yaml`
and `nucleotide_transformer.yaml`): Genomic Benchmarks are scored by top-1 accuracy (`val/accuracy` is the monitored
metric of the GB pipeline); Nucleotide Transformer (v1) histone marks and enhancers by MCC, promoters and the binary
splice tasks by F1 (`f1_binary`), `splice_sites_all` by accuracy. The revised NT set reuses the v1 metric of the task
family (an assumption: the reference has no config for it); its lengths are those of the revised data (histone 1 kb,
enhancers 400, promoters 300, splice 600).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Collection = Literal["genomic_benchmarks", "nucleotide_transformer", "nucleotide_transformer_revised", "custom"]
Metric = Literal["mcc", "f1", "accuracy"]


class TaskDataError(ValueError):
    """Bad or missing task data. The message is one line and names the task or file (and line) concerned."""


@dataclass(frozen=True)
class TaskSpec:
    name: str  # e.g. "human_nontata_promoters", "H3K4me3"
    collection: Collection
    max_length: int  # reference max length in bases
    metric: Metric  # the task's headline metric
    num_classes: int


@dataclass(frozen=True)
class CustomTask(TaskSpec):
    """A task read from local files (see `custom_task`)."""

    path: str = ""  # the training file (or a directory with train/dev/test files)
    sequence_column: str = "sequence"
    label_column: str = "label"
    test_path: str | None = None
    valid_path: str | None = None


def _specs(collection: Collection, rows: list[tuple[str, int, Metric, int]]) -> dict[str, TaskSpec]:
    return {name: TaskSpec(name, collection, length, metric, classes) for name, length, metric, classes in rows}


GENOMIC_BENCHMARKS = _specs("genomic_benchmarks", [
    ("dummy_mouse_enhancers_ensembl", 1024, "accuracy", 2),
    ("demo_coding_vs_intergenomic_seqs", 200, "accuracy", 2),
    ("demo_human_or_worm", 200, "accuracy", 2),
    ("human_enhancers_cohn", 500, "accuracy", 2),
    ("human_enhancers_ensembl", 512, "accuracy", 2),
    ("human_ensembl_regulatory", 512, "accuracy", 3),
    ("human_nontata_promoters", 251, "accuracy", 2),
    ("human_ocr_ensembl", 512, "accuracy", 2),
])

_HISTONE_V1 = ["H3", "H3K4me1", "H3K4me2", "H3K4me3", "H3K9ac", "H3K14ac", "H3K36me3", "H3K79me3", "H4", "H4ac"]
NUCLEOTIDE_TRANSFORMER = _specs("nucleotide_transformer", [
    ("enhancers", 200, "mcc", 2),
    ("enhancers_types", 200, "mcc", 3),
    *[(mark, 500, "mcc", 2) for mark in _HISTONE_V1],
    ("promoter_all", 300, "f1", 2),
    ("promoter_no_tata", 300, "f1", 2),
    ("promoter_tata", 300, "f1", 2),
    ("splice_sites_acceptors", 600, "f1", 2),
    ("splice_sites_all", 400, "accuracy", 3),
    ("splice_sites_donors", 600, "f1", 2),
])

_HISTONE_REVISED = ["H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3", "H3K9ac", "H3K9me3",
                    "H4K20me1"]
NUCLEOTIDE_TRANSFORMER_REVISED = _specs("nucleotide_transformer_revised", [
    *[(mark, 1000, "mcc", 2) for mark in _HISTONE_REVISED],
    ("enhancers", 400, "mcc", 2),
    ("enhancers_types", 400, "mcc", 3),
    ("promoter_all", 300, "f1", 2),
    ("promoter_no_tata", 300, "f1", 2),
    ("promoter_tata", 300, "f1", 2),
    ("splice_sites_acceptors", 600, "f1", 2),
    ("splice_sites_all", 600, "accuracy", 3),
    ("splice_sites_donors", 600, "f1", 2),
])

_BY_COLLECTION = {
    "genomic_benchmarks": GENOMIC_BENCHMARKS,
    "nucleotide_transformer": NUCLEOTIDE_TRANSFORMER,
    "nucleotide_transformer_revised": NUCLEOTIDE_TRANSFORMER_REVISED,
}


def resolve_task(task: TaskSpec | str) -> TaskSpec:
    """A TaskSpec as is; a name: a Genomic Benchmarks task, else an NT (v1) task; `"<collection>/<name>"` picks the
    collection (e.g. `"nucleotide_transformer_revised/H3K27ac"`)."""
    if isinstance(task, TaskSpec):
        return task
    if not isinstance(task, str):
        raise TypeError(f"task must be a TaskSpec or a task name, got {type(task).__name__}")
    if "/" in task:
        collection, name = task.split("/", 1)
        table = _BY_COLLECTION.get(collection)
        if table is None:
            raise TaskDataError(f"unknown task collection {collection!r} in {task!r} "
                                f"(known: {', '.join(_BY_COLLECTION)})")
        if name not in table:
            raise TaskDataError(f"unknown task {name!r} in {collection} (known: {', '.join(table)})")
        return table[name]
    for table in (GENOMIC_BENCHMARKS, NUCLEOTIDE_TRANSFORMER):
        if task in table:
            return table[task]
    if task in NUCLEOTIDE_TRANSFORMER_REVISED:
        return NUCLEOTIDE_TRANSFORMER_REVISED[task]
    raise TaskDataError(f"unknown task {task!r}: not a Genomic Benchmarks or Nucleotide Transformer task "
                        "(use '<collection>/<name>' or dnax.data.downstream.custom_task for your own files)")

"""Downstream classification tasks for fine-tuning: Genomic Benchmarks, Nucleotide Transformer (v1 and revised) and
your own files, as left-padded token batches.

    load_task("human_nontata_promoters")                      -> TaskData(train, valid, test, class_names)
    task_dataloader("H3K4me3", "train", batch_size=32, rc_aug=True)
    custom_task("tf0", "gue/tf/0", max_length=101)           -> a TaskSpec for load_task / task_dataloader
"""
from dnax.data.downstream.loader import ClassificationDataset, classification_dataloader, pad_left, task_dataloader
from dnax.data.downstream.loading import TaskData, custom_task, load_task, sorted_class_names, split_validation
from dnax.data.downstream.tasks import (GENOMIC_BENCHMARKS, NUCLEOTIDE_TRANSFORMER, NUCLEOTIDE_TRANSFORMER_REVISED,
                                        CustomTask, TaskDataError, TaskSpec, resolve_task)

__all__ = [
    "GENOMIC_BENCHMARKS", "NUCLEOTIDE_TRANSFORMER", "NUCLEOTIDE_TRANSFORMER_REVISED", "ClassificationDataset",
    "CustomTask", "TaskData", "TaskDataError", "TaskSpec", "classification_dataloader", "custom_task", "load_task",
    "pad_left", "resolve_task", "sorted_class_names", "split_validation", "task_dataloader",
]

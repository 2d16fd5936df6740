"""Classification batches: `{"input_ids": (B, max_length) long, "labels": (B,) long}` in dnax token ids.

Each sequence is encoded with `dnax.tokenizer` (no special tokens), cut to its first `max_length` bases and LEFT-padded
with [PAD]=4, as the reference does for both Genomic Benchmarks and Nucleotide Transformer tasks (HF tokenizer call
with `add_special_tokens=False, padding="max_length", truncation=True`, `padding_side="left"`, the default
right-side truncation, and `add_eos: False`: no [CLS]/[SEP]/EOS token is added).

Reverse-complement augmentation (`rc_aug`) flips each example with probability 1/2 before truncation and padding (the
reference reverse-complements the string, then tokenizes). The flips and the shuffle order come from the sampler, a
generator seeded by `seed` and the epoch, so they are deterministic and independent of `num_workers`.
Under torch.distributed each process reads its own share: indices are padded to a multiple of the world size by
repeating the first ones and strided, exactly as `DistributedSampler` does (every process then runs the same number of
batches, which Composer's collective calls per batch need). The sampler is a `DistributedSampler` by type, so Composer
accepts it under DDP and drops the repeated examples from the last evaluation batch; `dnax.finetune.evaluate` does the
same for the test split.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dnax.data.downstream.loading import load_task
from dnax.data.downstream.tasks import TaskDataError, TaskSpec, resolve_task
from dnax.tokenizer import COMPLEMENT, PAD, encode

Split = Literal["train", "valid", "test"]


def pad_left(ids: np.ndarray, max_length: int) -> np.ndarray:
    """The first `max_length` ids, left-padded with [PAD] to exactly `max_length`."""
    out = np.full(max_length, PAD, dtype=np.int64)
    kept = ids[:max_length]
    out[max_length - len(kept):] = kept
    return out


class ClassificationDataset(Dataset):
    """Examples (sequence, class id), tokenized once; indexed by `i` or `(i, reverse_complement)`."""

    def __init__(self, examples: Sequence[tuple[str, int]], max_length: int):
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.max_length = max_length
        self.tokens: list[np.ndarray] = []
        for i, (seq, _) in enumerate(examples):
            try:
                self.tokens.append(encode(seq))
            except ValueError as e:
                raise TaskDataError(f"example {i}: {e}") from None
        self.labels = torch.tensor([label for _, label in examples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, key: int | tuple[int, bool]) -> dict[str, torch.Tensor]:
        i, flip = key if isinstance(key, tuple) else (key, False)
        ids = self.tokens[i]
        if flip:
            ids = COMPLEMENT[ids[::-1]]
        return {"input_ids": torch.from_numpy(pad_left(ids, self.max_length)), "labels": self.labels[i]}


def _world() -> tuple[int, int]:
    """(rank, world size): of the process group, else of the launcher's environment (`RANK`, `WORLD_SIZE`), as
    Composer reads them; loaders are often built before the Trainer initializes the process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class ExampleSampler(DistributedSampler):
    """Yields `(index, reverse_complement)`: a seeded permutation (or the identity) and seeded coin flips.

    A `DistributedSampler` subclass for Composer's type checks; it sets the attributes Composer reads (`dataset`
    for its length, `total_size`, `num_replicas`, `rank`) itself, without DistributedSampler's constructor."""

    def __init__(self, n: int, *, shuffle: bool, rc_aug: bool, seed: int, pad_to_world: bool):
        self.n, self.shuffle, self.rc_aug, self.seed, self.pad_to_world = n, shuffle, rc_aug, seed, pad_to_world
        self.epoch = 0
        self.rank, self.world = _world()
        self.num_replicas, self.drop_last = self.world, False
        self.dataset = range(n)  # sized stand-in: Composer reads len(sampler.dataset)
        self.total_size = -(-n // self.world) * self.world if pad_to_world else n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> tuple[list[int], list[bool]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist() if self.shuffle else list(range(self.n))
        flips = (torch.rand(self.n, generator=g) < 0.5).tolist() if self.rc_aug else [False] * self.n
        if self.world > 1:
            if self.pad_to_world and self.n % self.world:
                extra = self.world - self.n % self.world
                order, flips = order + order[:extra], flips + flips[:extra]
            order, flips = order[self.rank::self.world], flips[self.rank::self.world]
        return order, flips

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        order, flips = self._indices()
        self.epoch += 1
        return iter(zip(order, flips))

    def __len__(self) -> int:
        if self.world == 1:
            return self.n
        return len(range(self.rank, self.total_size, self.world))


def classification_dataloader(examples: Sequence[tuple[str, int]], *, batch_size: int, max_length: int, shuffle: bool,
                              seed: int = 0, rc_aug: bool = False, drop_last: bool = False,
                              num_workers: int = 0) -> DataLoader:
    """A DataLoader of left-padded classification batches (see the module docstring)."""
    dataset = ClassificationDataset(examples, max_length)
    sampler = ExampleSampler(len(dataset), shuffle=shuffle, rc_aug=rc_aug, seed=seed, pad_to_world=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def task_dataloader(task: TaskSpec | str, split: Split, *, batch_size: int, seed: int = 0, val_seed: int = 0,
                    shuffle: bool | None = None, rc_aug: bool = False, source: str = "auto",
                    data_dir: str | None = None, max_length: int | None = None, val_fraction: float = 0.1,
                    **kw) -> DataLoader:
    """`load_task` (cached in-process) + `classification_dataloader` for one split.

    shuffle: default True for 'train', False otherwise. rc_aug applies to the 'train' split only (ignored for
    evaluation splits). max_length: default the task's reference max length. `**kw` goes to
    `classification_dataloader` (drop_last, num_workers).
    """
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
    spec = resolve_task(task)
    data = load_task(spec, source=source, data_dir=data_dir, val_fraction=val_fraction, val_seed=val_seed)
    is_train = split == "train"
    return classification_dataloader(
        getattr(data, split), batch_size=batch_size, max_length=max_length or spec.max_length,
        shuffle=is_train if shuffle is None else shuffle, seed=seed, rc_aug=rc_aug and is_train, **kw)

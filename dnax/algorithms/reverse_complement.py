"""Reverse-complement augmentation on token batches.

`random_reverse_complement` is the pure function; `ReverseComplementAugmentation` applies it to the training batch
after it leaves the dataloader (before the objective masks or shifts it), as the reference's `rc_aug` does per
sample with probability 0.5. Evaluation batches are never touched.
"""
from __future__ import annotations

import torch
from composer.core import Algorithm, Event, State
from composer.loggers import Logger

from dnax.models.objectives import hashed_uniforms, sample_keys
from dnax.tokenizer import reverse_complement


def random_reverse_complement(input_ids: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None,
                              keys: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse-complement each row of `input_ids` (B, L) independently with probability `p`.

    The coin of each row comes from `keys` (B,) int64 hashed with `seed` when given (a function of the sample:
    `dnax.models.objectives.sample_keys`), else from `generator` / torch's global RNG.
    Returns the new ids and the boolean (B,) mask of rows that were flipped.
    """
    if keys is not None:
        coin = hashed_uniforms(keys.to(input_ids.device), seed, 1)[0]
    else:
        coin = torch.rand(input_ids.shape[0], device=input_ids.device, generator=generator)
    flip = coin < p
    out = torch.where(flip[:, None], reverse_complement(input_ids), input_ids)
    return out, flip


class ReverseComplementAugmentation(Algorithm):
    """Composer Algorithm: `random_reverse_complement` on `batch[key]` at `Event.AFTER_DATALOADER` in training.

    Records the flipped rows as `batch['reverse_complemented']` so a batch stays traceable to the genome. With
    `seed` set and batches that carry `chrom_index`/`start`/`epoch`, each window's coin is a hash of (window, epoch,
    seed), independent of batching and process layout; otherwise torch's global RNG.
    """

    def __init__(self, p: float = 0.5, key: str = "input_ids", seed: int | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.key, self.seed = p, key, seed

    def match(self, event: Event, state: State) -> bool:
        return event == Event.AFTER_DATALOADER and self.p > 0

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        batch = state.batch
        keys = sample_keys(batch) if self.seed is not None else None
        batch[self.key], batch["reverse_complemented"] = random_reverse_complement(
            batch[self.key], self.p, keys=keys, seed=self.seed if self.seed is not None else 0)

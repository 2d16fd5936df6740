"""Language-model metrics beyond Composer's: baselines scored on exactly the positions the model is scored on."""
from __future__ import annotations

import math

import torch
from torchmetrics import Metric

from dnax import tokenizer as tk

_BASES = torch.tensor(tk.NUCLEOTIDES)


class MLMBaselines(Metric):
    """Cross-entropy (nats) of a model-free predictor (`kind`) on the scored (non-ignored) positions.

    - ``order0``: predict the nucleotide composition of the scored targets themselves (the best order-0 model).
    - ``order0_copy``: order-0, plus the optimal use of the visible input token at masked positions: under
      80/10/10 masking a visible base b is the true base (kept, probability p_keep) or a uniform random
      replacement among `n_random_choices` tokens (probability p_rand), so
      P(t | b) is proportional to pi_t * (p_keep * [t = b] + p_rand / n_random_choices).
      Any other input ([MASK], a random special token) gets pi_t. A model that learns nothing about DNA reaches it.

    Accumulates a 5x4 count table (input = not a base, or one of A/C/G/T; target base), so the result does not
    depend on batching and is exact across processes (the table is summed).
    """

    full_state_update = False

    def __init__(self, kind: str = "order0", keep_prob: float = 0.1, random_prob: float = 0.1,
                 n_random_choices: int = tk.VOCAB_SIZE, ignore_index: int = tk.PAD, **kw):
        super().__init__(**kw)
        if kind not in ("order0", "order0_copy"):
            raise ValueError(f"unknown baseline kind {kind!r}: expected 'order0' or 'order0_copy'")
        self.kind = kind
        self.keep_prob, self.random_prob, self.ignore_index = keep_prob, random_prob, ignore_index
        self.n_random_choices = n_random_choices
        self.add_state("counts", default=torch.zeros(5, 4, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        scored = targets != self.ignore_index
        tgt = targets[scored].long() - tk.A
        inp = inputs[scored].long()
        is_base = (inp >= tk.A) & (inp <= tk.T)
        row = torch.where(is_base, inp - tk.A + 1, torch.zeros_like(inp))
        ok = (tgt >= 0) & (tgt < 4)
        flat = row[ok] * 4 + tgt[ok]
        self.counts += torch.bincount(flat, minlength=20).reshape(5, 4).to(self.counts)

    def compute(self) -> torch.Tensor:
        counts = self.counts
        total = counts.sum()
        if total == 0:
            return torch.tensor(math.nan)
        pi = counts.sum(0) / total
        log_pi = torch.log(pi.clamp_min(1e-12))
        if self.kind == "order0":
            return (-(counts.sum(0) * log_pi).sum() / total).float()
        # rows 1..4: visible base b; P(t | b) ~ pi_t * (keep * [t == b] + rand / 4)
        cond = pi[None, :] * (self.keep_prob * torch.eye(4, dtype=pi.dtype)
                              + self.random_prob / self.n_random_choices)
        cond = cond / cond.sum(1, keepdim=True)
        nll = -(counts[0] * log_pi).sum() - (counts[1:] * torch.log(cond.clamp_min(1e-12))).sum()
        return (nll / total).float()

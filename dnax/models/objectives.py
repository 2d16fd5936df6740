"""Training objectives: turn a batch of raw genome windows into (inputs, targets).

Both follow the reference (caduceus / hyena-dna `HG38Dataset`): N is replaced by [PAD] in inputs and targets, and
[PAD] targets are ignored by the loss. They run inside the model, on the device, so training and evaluation use the
same code; at evaluation the MLM mask is a fixed function of each window's genomic position (when the batch carries
`chrom_index`/`start`), so every evaluation scores the same masked positions whatever the batching or device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch

from dnax import tokenizer as tk

IGNORE_INDEX = tk.PAD


def replace_n_with_pad(tokens: torch.Tensor) -> torch.Tensor:
    return torch.where(tokens == tk.N, torch.full_like(tokens, tk.PAD), tokens)


def _mix64(x: torch.Tensor) -> torch.Tensor:
    """A 64-bit integer mixer (splitmix64 finaliser) on int64 tensors, with logical shifts emulated by masks."""
    def lshr(v, s):
        return (v >> s) & ((1 << (64 - s)) - 1)

    x = x ^ lshr(x, 30)
    x = x * -4658895280553007687  # 0xbf58476d1ce4e5b9 as int64
    x = x ^ lshr(x, 27)
    x = x * -7723592293110705685  # 0x94d049bb133111eb as int64
    return x ^ lshr(x, 31)


def hashed_uniforms(keys: torch.Tensor, seed: int, n: int) -> list[torch.Tensor]:
    """n independent U[0, 1) tensors, each a deterministic function of (key, seed, stream)."""
    out = []
    for stream in range(n):
        h = _mix64(keys * 4 + stream ^ (seed * 0x9E3779B97F4A7C15 & 0x7FFFFFFFFFFFFFFF))
        out.append(((h >> 11) & ((1 << 53) - 1)).double().mul_(2.0**-53).float())
    return out


def sample_keys(batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """One well-mixed int64 key per window and pass over the data, from (`chrom_index`, `start`, `epoch`); None when
    the batch lacks them. Training draws keyed by it are a function of the sample alone: the same masks and flips
    whatever the batch size, the number of processes, the microbatching or a resume."""
    if not all(k in batch for k in ("chrom_index", "start", "epoch")):
        return None
    key = (batch["chrom_index"].long() << 34) + batch["start"].long() + (batch["epoch"].long() << 45)
    return _mix64(key)


@dataclass(frozen=True)
class MaskedLM:
    """BERT-style masking: each non-N position is selected with `mlm_probability`; a selected position becomes
    [MASK] with probability `mask_prob`, a random token with `random_prob`, and stays unchanged otherwise.
    Targets are the original ids at selected positions and [PAD] (ignored) elsewhere.

    `random_tokens="vocab"` draws the random token uniformly from all 12 ids, as the reference does
    (`mlm_getitem` with `eligible_replacements=None`); `"nucleotides"` draws from A/C/G/T.

    Training masks: with `train_seed` set and batches that carry `chrom_index`/`start`/`epoch` (the pretraining
    loader's), a hash of (window, epoch, position, train_seed), so they do not depend on how samples are batched or
    spread over processes; otherwise torch's global RNG (as the reference).
    """

    mlm_probability: float = 0.15
    mask_prob: float = 0.8
    random_prob: float = 0.1
    random_tokens: Literal["vocab", "nucleotides"] = "vocab"
    eval_seed: int = 1234
    train_seed: int | None = None

    causal: bool = False

    def __post_init__(self):
        if not 0.0 < self.mlm_probability <= 1.0:
            raise ValueError(f"MaskedLM: mlm_probability must be in (0, 1], got {self.mlm_probability}")
        if min(self.mask_prob, self.random_prob) < 0.0 or self.mask_prob + self.random_prob > 1.0:
            raise ValueError(f"MaskedLM: mask_prob {self.mask_prob} and random_prob {self.random_prob} must be >= 0 "
                             "and sum to at most 1 (the rest stays unchanged)")
        if self.random_tokens not in ("vocab", "nucleotides"):
            raise ValueError(f"MaskedLM: random_tokens must be 'vocab' or 'nucleotides', got {self.random_tokens!r}")

    @property
    def n_random_choices(self) -> int:
        return tk.VOCAB_SIZE if self.random_tokens == "vocab" else 4

    def __call__(self, batch: Mapping[str, torch.Tensor], training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = replace_n_with_pad(batch["input_ids"])
        u_select, u_kind, u_base = self._uniforms(batch, tokens, training)
        selected = (u_select < self.mlm_probability) & (tokens != tk.PAD)
        targets = torch.where(selected, tokens, torch.full_like(tokens, IGNORE_INDEX))
        to_mask = selected & (u_kind < self.mask_prob)
        to_random = selected & (u_kind >= self.mask_prob) & (u_kind < self.mask_prob + self.random_prob)
        first, n_choices = (0, tk.VOCAB_SIZE) if self.random_tokens == "vocab" else (tk.A, 4)
        random_ids = (first + (u_base * n_choices).long().clamp_(max=n_choices - 1)).to(tokens.dtype)
        inputs = torch.where(to_mask, torch.full_like(tokens, tk.MASK), tokens)
        inputs = torch.where(to_random, random_ids, inputs)
        return inputs, targets

    def _uniforms(self, batch, tokens, training):
        if training and self.train_seed is not None and (window := sample_keys(batch)) is not None:
            pos = torch.arange(tokens.shape[1], device=tokens.device, dtype=torch.int64)
            return hashed_uniforms(window.to(tokens.device)[:, None] + pos[None, :], self.train_seed, 3)
        if training or "chrom_index" not in batch or "start" not in batch:
            gen = None if training else torch.Generator(device=tokens.device).manual_seed(self.eval_seed)
            return [torch.rand(tokens.shape, device=tokens.device, generator=gen) for _ in range(3)]
        # Key = genomic coordinate of each base: the same base always gets the same evaluation mask.
        pos = torch.arange(tokens.shape[1], device=tokens.device, dtype=torch.int64)
        keys = (batch["chrom_index"].long()[:, None] << 34) + batch["start"].long()[:, None] + pos[None, :]
        if "reverse_complemented" in batch:
            keys = keys + (batch["reverse_complemented"].long()[:, None] << 62)
        return hashed_uniforms(keys, self.eval_seed, 3)


@dataclass(frozen=True)
class CausalLM:
    """Next-token prediction: inputs are the window, targets the window shifted left with [SEP] appended
    (the reference's `add_eos`)."""

    causal: bool = True

    def __call__(self, batch: Mapping[str, torch.Tensor], training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = replace_n_with_pad(batch["input_ids"])
        sep = torch.full_like(tokens[:, :1], tk.SEP)
        return tokens, torch.cat([tokens[:, 1:], sep], dim=1)

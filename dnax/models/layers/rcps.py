"""Reverse-complement parameter sharing (RCPS), as caduceus `modeling_rcps.py` (concatenating variant).

An RCPS hidden state has 2*D channels: `[forward half, RC half]`, the RC half in RC orientation (flipped along length
and channels). `rc(h) = flip(h, dims=[-2, -1])` maps the state of a sequence to the state of its reverse complement, and
every module here is exactly RC-equivariant: `module(rc(x)) == rc(module(x))` (the LM head: logits of the reverse
complement are the flipped, complemented logits).

Parameter and buffer names match the reference checkpoints: `embedding.weight`, `complement_map`, `lm_head.weight`,
`submodule.*`.

RC-branch signal: a wrapped submodule whose `forward` declares a keyword parameter named `rc_branch`
(`RC_BRANCH_KWARG`) is called with `rc_branch=False` on the forward half and `rc_branch=True` on the RC half, so it can
reproduce reference asymmetries between the two calls (the sLSTM layer's group-norm head flip). Other submodules
are called with the caller's keyword arguments only.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

RC_BRANCH_KWARG = "rc_branch"


def rc(x: torch.Tensor) -> torch.Tensor:
    """Reverse-complement an RCPS-oriented hidden state half: flip length (dim -2) and channels (dim -1)."""
    return torch.flip(x, dims=[-2, -1])


def _complement_tensor(complement_map: Mapping[int, int] | Sequence[int] | torch.Tensor,
                       vocab_size: int) -> torch.Tensor:
    """`{id: complement id}` (int or str keys, ids 0..V-1), a sequence or a tensor -> int64 tensor indexed by id,
    checked to be an involution over exactly `vocab_size` ids."""
    if isinstance(complement_map, Mapping):
        table = {int(k): int(v) for k, v in complement_map.items()}
        if sorted(table) != list(range(len(table))):
            raise ValueError(f"complement_map keys must be 0..{len(table) - 1}, got {sorted(table)}")
        values = [table[i] for i in range(len(table))]
    else:
        values = [int(v) for v in (complement_map.tolist() if isinstance(complement_map, torch.Tensor)
                                   else complement_map)]
    t = torch.tensor(values, dtype=torch.long)
    if len(t) != vocab_size:
        raise ValueError(f"complement_map has {len(t)} entries, vocab_size is {vocab_size}")
    if not torch.equal(t[t], torch.arange(len(t))):
        raise ValueError("complement_map must be an involution on 0..V-1")
    return t


class RCPSEmbedding(nn.Module):
    """Token ids (B, L) -> (B, L, 2*d_model): `cat([emb(ids), rc(emb(rc_ids))])`."""

    def __init__(self, vocab_size: int, d_model: int, complement_map: Mapping[int, int] | Sequence[int] | torch.Tensor):
        super().__init__()
        self.register_buffer("complement_map", _complement_tensor(complement_map, vocab_size))
        self.embedding = nn.Embedding(vocab_size, d_model)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def rc(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Reverse complement of token ids (B, L): flip length, complement every id."""
        return self.complement_map[torch.flip(input_ids, dims=[-1])]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        fwd = self.embedding(input_ids)
        return torch.cat([fwd, rc(self.embedding(self.rc(input_ids)))], dim=-1)


def _accepts_rc_branch(module: nn.Module) -> bool:
    try:
        return RC_BRANCH_KWARG in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


class RCPSWrapper(nn.Module):
    """Makes a (B, L, D) -> (B, L, D') module RC-equivariant on (B, L, 2D) -> (B, L, 2D').

    `forward(x) = cat([m(x[..., :D]), rc(m(rc(x[..., D:])))])`; keyword arguments go to both calls, plus
    `rc_branch=False/True` where `m.forward` declares `rc_branch`.
    """

    def __init__(self, submodule: nn.Module):
        super().__init__()
        self.submodule = submodule
        self._signal_branch = _accepts_rc_branch(submodule)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        d = x.shape[-1] // 2
        fwd_kwargs, rc_kwargs = kwargs, kwargs
        if self._signal_branch:
            fwd_kwargs, rc_kwargs = {**kwargs, RC_BRANCH_KWARG: False}, {**kwargs, RC_BRANCH_KWARG: True}
        fwd = self.submodule(x[..., :d], **fwd_kwargs)
        rc_out = self.submodule(rc(x[..., d:]), **rc_kwargs)
        return torch.cat([fwd, rc(rc_out)], dim=-1)


class RCPSAddNormWrapper(RCPSWrapper):
    """RC-equivariant add + norm (caduceus `RCPSAddNormWrapper`): `forward(x, residual=None, prenorm=False)`."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, prenorm: bool = False):
        d = x.shape[-1] // 2
        dtype = self.submodule.weight.dtype
        res_fwd = x[..., :d] if residual is None else x[..., :d] + residual[..., :d]
        res_rc = rc(x[..., d:]) if residual is None else rc(x[..., d:]) + rc(residual[..., d:])
        out = torch.cat([self.submodule(res_fwd.to(dtype)), rc(self.submodule(res_rc.to(dtype)))], dim=-1)
        if not prenorm:
            return out
        return out, (x if residual is None else torch.cat([res_fwd, rc(res_rc)], dim=-1))


class RCPSLMHead(nn.Module):
    """(B, L, 2*d_model) -> logits (B, L, V): `W h_fwd + W[complement] flip_channels(h_rc)`, no bias."""

    def __init__(self, d_model: int, vocab_size: int, complement_map: Mapping[int, int] | Sequence[int] | torch.Tensor):
        super().__init__()
        self.register_buffer("complement_map", _complement_tensor(complement_map, vocab_size))
        self.true_dim = d_model
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.lm_head.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.true_dim
        if x.shape[-1] != 2 * d:
            raise ValueError(f"expected {2 * d} channels, got {x.shape[-1]}")
        fwd = F.linear(x[..., :d], self.weight)
        rc_logits = F.linear(torch.flip(x[..., d:], dims=[-1]), self.weight[self.complement_map])
        return fwd + rc_logits

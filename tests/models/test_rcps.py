"""RCPS modules: caduceus semantics, reference keys, exact RC equivariance (embedding -> wrapped layers -> head)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dnax.models.layers.common import LayerNorm
from dnax.models.layers.rcps import (RCPSAddNormWrapper, RCPSEmbedding, RCPSLMHead, RCPSWrapper,
                                     _complement_tensor, rc)
from dnax.models.layers.slstm import GatedFeedForward, SLSTMLayer
from dnax.tokenizer import COMPLEMENT_MAP, VOCAB_SIZE

D = 16


def _rc_ids(ids: torch.Tensor) -> torch.Tensor:
    return _complement_tensor(COMPLEMENT_MAP, len(COMPLEMENT_MAP))[ids.flip(-1)]


def _perturb_(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


class _Stack(nn.Module):
    """embedding -> pre-norm residual sLSTM + FFN blocks (all RCPS-wrapped) -> norm -> head."""

    def __init__(self, rc_head_flip: bool, n_blocks: int = 2):
        super().__init__()
        self.emb = RCPSEmbedding(VOCAB_SIZE, D, COMPLEMENT_MAP)
        self.blocks = nn.ModuleList()
        for i in range(n_blocks):
            self.blocks.append(nn.ModuleDict({
                "xlstm_norm": RCPSWrapper(LayerNorm(D)),
                "xlstm": RCPSWrapper(SLSTMLayer(D, 4, 4, True, 0.0, block_idx=i, num_blocks=n_blocks,
                                                backend="vanilla", rc_head_flip=rc_head_flip)),
                "ffn_norm": RCPSWrapper(LayerNorm(D)),
                "ffn": RCPSWrapper(GatedFeedForward(D, 1.3, True, 16, 0.0)),
            }))
        self.norm = RCPSWrapper(LayerNorm(D))
        self.head = RCPSLMHead(D, VOCAB_SIZE, COMPLEMENT_MAP)

    def hidden(self, ids):
        x = self.emb(ids)
        for b in self.blocks:
            x = x + b["xlstm"](b["xlstm_norm"](x))
            x = x + b["ffn"](b["ffn_norm"](x))
        return self.norm(x)

    def forward(self, ids):
        return self.head(self.hidden(ids))


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, VOCAB_SIZE, (3, 29), generator=torch.Generator().manual_seed(0))


def test_reference_key_names():
    emb = RCPSEmbedding(VOCAB_SIZE, D, COMPLEMENT_MAP)
    head = RCPSLMHead(D, VOCAB_SIZE, COMPLEMENT_MAP)
    assert sorted(emb.state_dict()) == ["complement_map", "embedding.weight"]
    assert sorted(head.state_dict()) == ["complement_map", "lm_head.weight"]
    assert emb.complement_map.dtype == head.complement_map.dtype == torch.int64
    assert emb.complement_map.tolist() == [COMPLEMENT_MAP[i] for i in range(VOCAB_SIZE)]
    assert list(RCPSWrapper(LayerNorm(D)).state_dict()) == ["submodule.weight"]


def test_complement_map_forms():
    as_dict = _complement_tensor(COMPLEMENT_MAP, 12)
    assert torch.equal(_complement_tensor({str(k): v for k, v in COMPLEMENT_MAP.items()}, 12), as_dict)
    assert torch.equal(_complement_tensor(list(as_dict.tolist()), 12), as_dict)
    with pytest.raises(ValueError):
        _complement_tensor({0: 1, 1: 1}, 2)  # not an involution
    with pytest.raises(ValueError):
        RCPSEmbedding(16, D, COMPLEMENT_MAP)  # size mismatch


def test_caduceus_semantics(ids):
    """The concatenating caduceus forward, written out."""
    torch.manual_seed(0)
    emb = RCPSEmbedding(VOCAB_SIZE, D, COMPLEMENT_MAP)
    cm = emb.complement_map
    h = emb(ids)
    torch.testing.assert_close(h[..., :D], emb.embedding(ids), rtol=0, atol=0)
    torch.testing.assert_close(h[..., D:], emb.embedding(cm[ids.flip(-1)]).flip(-2, -1), rtol=0, atol=0)
    lin = nn.Linear(D, D)
    x = torch.randn(2, 5, 2 * D)
    out = RCPSWrapper(lin)(x)
    torch.testing.assert_close(out, torch.cat([lin(x[..., :D]), lin(x[..., D:].flip(-2, -1)).flip(-2, -1)], -1))
    head = RCPSLMHead(D, VOCAB_SIZE, COMPLEMENT_MAP)
    w = head.lm_head.weight
    torch.testing.assert_close(head(x), x[..., :D] @ w.T + x[..., D:].flip(-1) @ w[cm].T)


def test_wrapper_passes_rc_branch_only_to_modules_that_take_it():
    calls = []

    class Aware(nn.Module):
        def forward(self, x, *, rc_branch=False):
            calls.append(rc_branch)
            return x

    x = torch.randn(1, 3, 4)
    RCPSWrapper(Aware())(x)
    RCPSWrapper(nn.Identity())(x)  # would raise on an unexpected keyword
    assert calls == [False, True]


def test_stack_is_exactly_rc_equivariant(ids):
    torch.manual_seed(0)
    model = _Stack(rc_head_flip=False).eval()
    _perturb_(model)
    with torch.no_grad():
        h, h_rc = model.hidden(ids), model.hidden(_rc_ids(ids))
        logits, logits_rc = model(ids), model(_rc_ids(ids))
    assert torch.equal(h_rc, h.flip(-2, -1))
    cm = model.head.complement_map
    assert torch.equal(logits_rc, logits.flip(-2)[..., cm])


def test_reference_head_flip_quirk_breaks_equivariance(ids):
    """The reference's RCPS sLSTM (rc_head_flip=True, what its checkpoints need) is not RC-equivariant."""
    torch.manual_seed(0)
    model = _Stack(rc_head_flip=True).eval()
    _perturb_(model)
    with torch.no_grad():
        gap = (model(_rc_ids(ids)) - model(ids).flip(-2)[..., model.head.complement_map]).abs().max()
    assert gap > 1e-3


def test_add_norm_wrapper_equivariant_and_caduceus_semantics():
    torch.manual_seed(0)
    norm = nn.LayerNorm(D)
    _perturb_(norm)
    w = RCPSAddNormWrapper(norm)
    x, res = torch.randn(2, 7, 2 * D), torch.randn(2, 7, 2 * D)
    out, new_res = w(x, res, prenorm=True)
    torch.testing.assert_close(new_res, x + res)
    torch.testing.assert_close(out, torch.cat([norm((x + res)[..., :D]), rc(norm(rc((x + res)[..., D:])))], -1))
    out_rc, res_rc = w(x.flip(-2, -1), res.flip(-2, -1), prenorm=True)
    assert torch.equal(out_rc, out.flip(-2, -1)) and torch.equal(res_rc, new_res.flip(-2, -1))
    assert torch.equal(w(x), torch.cat([norm(x[..., :D]), rc(norm(rc(x[..., D:])))], -1))


def test_gradients_finite(ids):
    model = _Stack(rc_head_flip=True)
    loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

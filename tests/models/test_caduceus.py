"""Caduceus: BiMamba against a plain composition of mamba_ssm reference Mambas, weight ties, RC equivariance of
Caduceus-PS (fused and unfused add+norm), post-hoc conjoining (PH), vocabulary padding, key layouts."""
import importlib.util

import pytest
import torch

from dnax.models.backbones.caduceus import BiMamba, CaduceusLM, conjoin, reverse_complement_ids, undo_token_logits
from dnax.tokenizer import COMPLEMENT_MAP

def stub_selective_scan_cuda() -> None:
    """mamba_ssm imports its CUDA extension unguarded: register an empty stand-in where it is not installed (with a
    module spec, so later `importlib.util.find_spec` calls in other test modules still work)."""
    import importlib.machinery
    import sys
    import types

    if "selective_scan_cuda" in sys.modules or importlib.util.find_spec("selective_scan_cuda") is not None:
        return
    stub = types.ModuleType("selective_scan_cuda")
    stub.__spec__ = importlib.machinery.ModuleSpec("selective_scan_cuda", None)
    sys.modules["selective_scan_cuda"] = stub


COMPLEMENT16 = torch.tensor([COMPLEMENT_MAP.get(i, i) for i in range(16)])


def _perturbed(model, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def _ids(B=2, L=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, 11, (B, L), generator=g)
    ids[0, 5], ids[1, 9] = 11, 3  # an N and a [MASK]
    return ids


@pytest.fixture
def reference_mamba(monkeypatch):
    if importlib.util.find_spec("mamba_ssm") is None:
        pytest.skip("mamba_ssm is not installed")
    stub_selective_scan_cuda()
    import mamba_ssm.modules.mamba_simple as ms
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref

    monkeypatch.setattr(ms, "selective_scan_fn", selective_scan_ref)
    return ms.Mamba


@pytest.mark.parametrize("strategy,tie", [("add", True), ("add", False), ("ew_multiply", True)])
def test_bimamba_matches_composed_reference_mambas(reference_mamba, strategy, tie):
    torch.manual_seed(0)
    ours = _perturbed(BiMamba(16, True, strategy, tie, d_state=4, bias=True, chunk_size=8))
    fwd, rev = (reference_mamba(16, d_state=4, bias=True, use_fast_path=False) for _ in range(2))
    fwd.load_state_dict({k[len("mamba_fwd."):]: v for k, v in ours.state_dict().items() if k.startswith("mamba_fwd.")})
    rev.load_state_dict({k[len("mamba_rev."):]: v for k, v in ours.state_dict().items() if k.startswith("mamba_rev.")})
    x = torch.randn(2, 21, 16)
    with torch.no_grad():
        a, b = fwd(x), rev(x.flip(1)).flip(1)
        expected = a + b if strategy == "add" else a * b
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_bimamba_with_scan_fn_runs_two_separate_mambas_like_the_reference():
    """With a `scan_fn` the fused both-directions scan is not used: each Mamba calls it once per forward."""
    from dnax.models.layers.selective_scan import selective_scan

    calls = []

    def counting(*args, **kw):
        calls.append(args[0].shape)
        return selective_scan(*args, **kw)

    torch.manual_seed(0)
    fused = _perturbed(BiMamba(16, d_state=4, chunk_size=8))
    split = BiMamba(16, d_state=4, scan_fn=counting)
    split.load_state_dict(fused.state_dict())
    x = torch.randn(2, 21, 16)
    with torch.no_grad():
        torch.testing.assert_close(split(x), fused(x), atol=1e-5, rtol=1e-5)
    assert calls == [torch.Size([2, 32, 21])] * 2  # one scan per direction, d_inner channels each


def test_bimamba_weight_tie_is_one_storage_and_trains_both_directions():
    m = BiMamba(16, d_state=4)
    for name in ("in_proj", "out_proj"):
        assert getattr(m.mamba_rev, name).weight is getattr(m.mamba_fwd, name).weight
    assert m.mamba_rev.conv1d.weight is not m.mamba_fwd.conv1d.weight
    n_unique = sum(p.numel() for p in m.parameters())
    n_all = sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False))
    assert n_all - n_unique == m.mamba_fwd.in_proj.weight.numel() + m.mamba_fwd.out_proj.weight.numel()
    m(torch.randn(1, 9, 16)).square().sum().backward()
    assert m.mamba_rev.A_log.grad.abs().sum() > 0 and m.mamba_fwd.A_log.grad.abs().sum() > 0
    untied = BiMamba(16, bidirectional_weight_tie=False, d_state=4)
    assert untied.mamba_rev.in_proj.weight is not untied.mamba_fwd.in_proj.weight
    with pytest.raises(NotImplementedError, match="concat"):
        BiMamba(16, bidirectional_strategy="concat")


@pytest.mark.parametrize("fused", [True, False])
def test_caduceus_ps_is_exactly_rc_equivariant(fused):
    torch.manual_seed(0)
    lm = _perturbed(CaduceusLM(d_model=16, n_layer=2, rcps=True, fused_add_norm=fused, ssm_cfg=dict(d_state=4)))
    ids = _ids()
    rc_ids = reverse_complement_ids(ids, COMPLEMENT16)
    with torch.no_grad():
        logits, logits_rc = lm(ids), lm(rc_ids)
        h, h_rc = lm.hidden_states(ids), lm.hidden_states(rc_ids)
    assert torch.equal(logits_rc, logits.flip(1)[..., COMPLEMENT16])  # bit for bit
    assert torch.equal(h_rc, h.flip(1, 2))  # RCPS state: flip length and all channels
    norm_keys = [k for k in lm.state_dict() if ".norm" in k]
    assert all((".submodule." in k) != fused for k in norm_keys), norm_keys


def test_fused_and_unfused_rcps_differ_with_the_same_weights():
    torch.manual_seed(0)
    fused = _perturbed(CaduceusLM(d_model=16, n_layer=2, rcps=True, ssm_cfg=dict(d_state=4)))
    unfused = CaduceusLM(d_model=16, n_layer=2, rcps=True, fused_add_norm=False, ssm_cfg=dict(d_state=4)).eval()
    unfused.load_state_dict({k.replace("norm.weight", "norm.submodule.weight").replace("norm_f.weight",
                                                                                        "norm_f.submodule.weight"): v
                             for k, v in fused.state_dict().items()})
    with torch.no_grad():
        assert (fused(_ids()) - unfused(_ids())).abs().max() > 1e-3  # the reference's fused branch swaps halves


def test_padded_vocab_complement_and_tied_head():
    lm = CaduceusLM(d_model=8, n_layer=1, rcps=True, ssm_cfg=dict(d_state=2))
    emb = lm.caduceus.backbone.embeddings.word_embeddings
    assert torch.equal(emb.complement_map, COMPLEMENT16) and torch.equal(lm.lm_head.complement_map, COMPLEMENT16)
    assert lm.lm_head.lm_head.weight is emb.embedding.weight
    plain = CaduceusLM(d_model=8, n_layer=1, ssm_cfg=dict(d_state=2))
    assert plain.lm_head.weight is plain.caduceus.backbone.embeddings.word_embeddings.weight
    assert "caduceus.backbone.embeddings.word_embeddings.weight" in plain.state_dict()
    assert plain(_ids(L=12)).shape == (2, 12, 16) and plain.hidden_states(_ids(L=12)).shape == (2, 12, 8)


def test_post_hoc_conjoining():
    torch.manual_seed(0)
    ph = _perturbed(CaduceusLM(d_model=16, n_layer=2, ssm_cfg=dict(d_state=4)))  # PH: no RCPS
    ids = _ids()
    rc_ids = reverse_complement_ids(ids, COMPLEMENT16)
    with torch.no_grad():
        conj, conj_rc = ph.conjoined_logits(ids), ph.conjoined_logits(rc_ids)
        plain = ph(ids)
        by_hand = (plain + ph(rc_ids).flip(1)[..., COMPLEMENT16]) / 2
        pooled = conjoin(lambda x: ph.hidden_states(x).mean(1), ids, COMPLEMENT16)
    torch.testing.assert_close(conj, by_hand, atol=0, rtol=0)
    assert torch.equal(conj_rc, undo_token_logits(COMPLEMENT16)(conj))  # equivariant
    assert (conj - plain).abs().max() > 1e-4  # the plain model is not
    assert pooled.shape == (2, 16)
    ps = _perturbed(CaduceusLM(d_model=16, n_layer=2, rcps=True, ssm_cfg=dict(d_state=4)))
    with torch.no_grad():  # an RC-equivariant model is its own conjoined version
        torch.testing.assert_close(ps.conjoined_logits(ids), ps(ids), atol=1e-6, rtol=0)


def test_trains_and_resets():
    torch.manual_seed(0)
    lm = CaduceusLM(d_model=16, n_layer=2, rcps=True, ssm_cfg=dict(d_state=4))
    ids = _ids()
    torch.nn.functional.cross_entropy(lm(ids).flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in lm.parameters())
    lm.reset_parameters()
    assert lm.lm_head.lm_head.weight is lm.caduceus.backbone.embeddings.word_embeddings.embedding.weight
    assert lm.caduceus.backbone.layers[0].mixer.submodule.mamba_rev.in_proj.weight is \
        lm.caduceus.backbone.layers[0].mixer.submodule.mamba_fwd.in_proj.weight

"""Conformance with the reference Caduceus-PS (`caduceus_ps`: DNA-xLSTM's caduceus copy, rcps, BiMamba add with tied
in/out projections, RMSNorm, fused_add_norm=true, tied LM head, vocab 12 -> 16).

Through the Lightning checkpoint (keys without `model.`) and through the Hugging Face layout (`hf/`, tied copies
dropped): logits and hidden states within the case tolerance; the reference key layout; the init's random draws;
the unfused add+norm branch's known difference; exact RC equivariance; the ties survive loading; and the dnax
`save_pretrained` / `from_pretrained` round trip for CaduceusLM and MambaLM.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dnax.convert import WeightMismatchError, load_hf, load_reference
from dnax.models.backbones.caduceus import CaduceusLM, reverse_complement_ids
from dnax.models.backbones.mamba import MambaLM
from dnax.pretrained import from_pretrained, save_pretrained
from dnax.reference_checkpoint import load_lightning_state_dict
from tests.models.conformance import CONFORMANCE

CASE = CONFORMANCE / "caduceus_ps"
PREFIX = "model."


@pytest.fixture(scope="module")
def case():
    sd = load_lightning_state_dict(CASE / "checkpoints" / "test" / "loss.ckpt")
    assert all(k.startswith(PREFIX) for k in sd)
    return dict(
        meta=json.loads((CASE / "case.json").read_text()),
        config=json.loads((CASE / "model_config.json").read_text()),
        state_dict={k[len(PREFIX):]: v for k, v in sd.items()},
        ids=torch.from_numpy(np.load(CASE / "input_ids.npy")),
        logits=torch.from_numpy(np.load(CASE / "logits.npy")),
        hidden=torch.from_numpy(np.load(CASE / "hidden_states.npy")),
    )


@pytest.fixture(scope="module")
def model(case):
    m = CaduceusLM.from_reference_config(case["config"]).eval()
    m.load_state_dict(case["state_dict"], strict=True)
    return m


def _assert_matches(m, case):
    with torch.no_grad():
        logits, hidden = m(case["ids"]), m.hidden_states(case["ids"])
    assert logits.shape == case["logits"].shape == (2, 128, 16) and hidden.shape == case["hidden"].shape
    tol = case["meta"]["tolerance"]
    assert (logits - case["logits"]).abs().max() <= tol
    assert (hidden - case["hidden"]).abs().max() <= tol


def test_lightning_checkpoint_matches_reference(model, case):
    _assert_matches(model, case)
    _assert_matches(load_reference(CASE), case)  # the converter path, prefix `model.` stripped


def test_hf_layout_matches_reference(case):
    _assert_matches(CaduceusLM.from_hf(CASE / "hf"), case)
    m = load_hf(CASE / "hf")
    _assert_matches(m, case)
    layer = m.caduceus.backbone.layers[1].mixer.submodule
    assert layer.mamba_rev.out_proj.weight is layer.mamba_fwd.out_proj.weight  # re-tied, not copied
    assert m.lm_head.lm_head.weight is m.caduceus.backbone.embeddings.word_embeddings.embedding.weight


def test_hf_missing_and_unexpected_keys_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text((CASE / "hf" / "config.json").read_text())
    sd = load_file(str(CASE / "hf" / "model.safetensors"))
    missing = "caduceus.backbone.layers.1.mixer.submodule.mamba_rev.A_log"
    del sd[missing]
    sd["caduceus.backbone.extra.weight"] = torch.zeros(2)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(WeightMismatchError) as e:
        load_reference(d)
    assert e.value.missing == [missing] and e.value.unexpected == ["caduceus.backbone.extra.weight"]
    assert "\n" not in str(e.value)


def test_state_dict_layout_is_the_reference(model, case):
    ours = model.state_dict()
    assert list(ours) == list(case["state_dict"])
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in case["state_dict"].items()}
    # ties survive load_state_dict: the tied names are one storage, as in the checkpoint
    for a, b in [("lm_head.lm_head.weight", "caduceus.backbone.embeddings.word_embeddings.embedding.weight"),
                 ("caduceus.backbone.layers.0.mixer.submodule.mamba_rev.in_proj.weight",
                  "caduceus.backbone.layers.0.mixer.submodule.mamba_fwd.in_proj.weight")]:
        assert ours[a].data_ptr() == ours[b].data_ptr()
        assert case["state_dict"][a].data_ptr() == case["state_dict"][b].data_ptr()


def test_init_reproduces_reference_draws(case):
    torch.manual_seed(1234)  # fixture weights = reference init under seed 1234 + 0.02 N(0, 1) (generator 4321)
    m = CaduceusLM.from_reference_config(case["config"])
    noise = torch.Generator().manual_seed(4321)
    for name, p in m.named_parameters():
        assert torch.equal(p.detach() + 0.02 * torch.randn(p.shape, generator=noise), case["state_dict"][name]), name


def test_unfused_add_norm_differs_as_the_reference_measured(case):
    m = CaduceusLM.from_reference_config(case["config"], fused_add_norm=False).eval()
    sd = {k.replace(".norm.weight", ".norm.submodule.weight").replace("norm_f.weight", "norm_f.submodule.weight"): v
          for k, v in case["state_dict"].items()}
    m.load_state_dict(sd, strict=True)
    with torch.no_grad():
        diff = (m(case["ids"]) - case["logits"]).abs().max().item()
    expected = case["meta"]["info"]["same_weights_fused_add_norm_false_logits_maxabsdiff"]  # 1.500164...
    assert abs(diff - expected) < 1e-4


def test_reference_weights_are_exactly_rc_equivariant(model, case):
    ids = case["ids"]
    cmap = model._complement
    with torch.no_grad():
        assert torch.equal(model(reverse_complement_ids(ids, cmap)), model(ids).flip(1)[..., cmap])


@pytest.mark.parametrize("make", [
    lambda: CaduceusLM(d_model=16, n_layer=2, rcps=True, ssm_cfg=dict(d_state=4)),
    lambda: CaduceusLM(d_model=16, n_layer=2, bidirectional_strategy="ew_multiply", ssm_cfg=dict(d_state=4)),
    lambda: MambaLM(d_model=16, n_layer=2, ssm_cfg=dict(d_state=4)),
], ids=["caduceus_ps", "caduceus_ph_ew_multiply", "mamba"])
def test_save_from_pretrained_round_trip(tmp_path, make):
    torch.manual_seed(0)
    m = make().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ids = torch.randint(7, 12, (2, 24))
    with torch.no_grad():
        ref = m(ids)
    d = save_pretrained(m, tmp_path / "m")
    torch.manual_seed(1)
    loaded = from_pretrained(d)
    assert type(loaded) is type(m) and loaded.init_kwargs == m.init_kwargs
    with torch.no_grad():
        assert torch.equal(loaded(ids), ref)
    # the ties are rebuilt by the constructor (several names, one parameter), not loaded as separate copies
    assert len(list(loaded.named_parameters(remove_duplicate=False))) > len(list(loaded.parameters()))

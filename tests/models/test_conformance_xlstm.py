"""Conformance with the reference DNA-xLSTM, mLSTM cases `xlstm_mlstm_causal` and `xlstm_mlstm_flip_add`.

Builds `XLSTMLM` from each case's `model_config.json`, loads `checkpoints/test/loss.ckpt` strictly (keys without
`model.backbone.`), runs fp32 eval on `input_ids.npy` and compares logits and hidden states with the reference
outputs (tolerance from `case.json`, 1e-5), with every mLSTM backend. Also: the state-dict layout is the
reference's, and the init reproduces the reference's random draws exactly (the fixture weights are the reference
init under seed 1234 plus 0.02 * N(0, 1) noise from a generator seeded 4321, see case.json "notes").
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dnax.models.backbones.xlstm import XLSTMLM
from dnax.reference_checkpoint import load_lightning_state_dict
from tests.models.conformance import CONFORMANCE

ROOT = CONFORMANCE
CASES = ["xlstm_mlstm_causal", "xlstm_mlstm_flip_add"]
PREFIX = "model.backbone."


def _checkpoint_state_dict(case: str) -> dict[str, torch.Tensor]:
    return load_lightning_state_dict(ROOT / case / "checkpoints" / "test" / "loss.ckpt")


@pytest.fixture(scope="module", params=CASES)
def case(request):
    name = request.param
    d = ROOT / name
    sd = _checkpoint_state_dict(name)
    assert all(k.startswith(PREFIX) for k in sd)
    return dict(
        name=name,
        meta=json.loads((d / "case.json").read_text()),
        config=json.loads((d / "model_config.json").read_text()),
        state_dict={k[len(PREFIX):]: v for k, v in sd.items()},
        ids=torch.from_numpy(np.load(d / "input_ids.npy")),
        logits=torch.from_numpy(np.load(d / "logits.npy")),
        hidden=torch.from_numpy(np.load(d / "hidden_states.npy")),
    )


@pytest.mark.parametrize("backend", ["reference", "parallel", "chunkwise", "kernel"])
def test_outputs_match_reference(case, backend):
    overrides = {} if backend == "reference" else {"m_backend": backend}
    model = XLSTMLM.from_reference_config(case["config"], **overrides).eval()
    model.load_state_dict(case["state_dict"], strict=True)
    with torch.no_grad():
        logits, hidden = model(case["ids"]), model.hidden_states(case["ids"])
    assert logits.shape == case["logits"].shape and logits.dtype == torch.float32
    assert hidden.shape == case["hidden"].shape
    dl, dh = (logits - case["logits"]).abs().max().item(), (hidden - case["hidden"]).abs().max().item()
    print(f"{case['name']} [{backend}] logits max abs diff {dl:.3g}, hidden {dh:.3g}")
    assert dl <= case["meta"]["tolerance"] and dh <= case["meta"]["tolerance"]


def test_state_dict_layout_is_the_reference(case):
    model = XLSTMLM.from_reference_config(case["config"])
    ours = model.state_dict()
    assert list(ours) == list(case["state_dict"])  # same keys, same order
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in case["state_dict"].items()}
    # a DnaLM holds the backbone as `backbone`: its keys are the checkpoint keys without `model.`
    assert {"backbone." + k for k in ours} == {k[len("model."):] for k in _checkpoint_state_dict(case["name"])}


def test_init_reproduces_reference_draws(case):
    torch.manual_seed(1234)
    model = XLSTMLM.from_reference_config(case["config"])
    noise = torch.Generator().manual_seed(4321)
    for name, p in model.named_parameters():
        noisy = p.detach() + 0.02 * torch.randn(p.shape, generator=noise)
        assert torch.equal(noisy, case["state_dict"][name]), name

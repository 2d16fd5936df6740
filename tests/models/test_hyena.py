"""HyenaDNA backbone: FFT convolution, causality, lengths, reference numerics (oracle copy), init, optimizer
groups, checkpoints (small shapes, CPU)."""
from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnax.models.backbones.hyena import HyenaLM, reference_state_dict
from dnax.models.layers.hyena import fftconv
from dnax.pretrained import from_pretrained, save_pretrained
from dnax.train import param_groups

SMALL = dict(d_model=32, n_layer=2, max_length=62, filter_order=16, embed_dropout=0.0)  # l_max = 64


def _model(**kw) -> HyenaLM:
    torch.manual_seed(0)
    return HyenaLM(**{**SMALL, **kw}).eval()


def _ids(B=2, L=48, seed=1):
    return torch.randint(7, 12, (B, L), generator=torch.Generator().manual_seed(seed))


def _direct_causal_conv(u, k, D):
    """y[c, t] = sum_{s <= t} k[c, t - s] u[c, s] + D[c] u[c, t], as a plain grouped convolution."""
    C, L = k.shape
    y = F.conv1d(F.pad(u, (L - 1, 0)), k.flip(-1)[:, None, :], groups=C)
    return y + u * D[:, None]


# ------------------------------------------------------------------------------------------- FFT convolution


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("L", [1, 5, 37, 64])
def test_fftconv_equals_direct_causal_convolution(dtype, tol, L):
    g = torch.Generator().manual_seed(L)
    u, k, D = (torch.randn(*s, generator=g, dtype=dtype) for s in ((3, 4, L), (4, L), (4,)))
    expected = _direct_causal_conv(u, k, D)
    got = fftconv(u, k, D)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


def test_fftconv_returns_the_input_dtype_and_computes_in_fp32():
    g = torch.Generator().manual_seed(0)
    u, k, D = torch.randn(2, 3, 40, generator=g), torch.randn(3, 40, generator=g), torch.randn(3, generator=g)
    got = fftconv(u.bfloat16(), k, D)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), _direct_causal_conv(u.bfloat16().float(), k, D), rtol=1e-2, atol=2e-2)


# ------------------------------------------------------------------------------------------- causality, lengths


@pytest.mark.parametrize("order", [2, 3])
def test_causal_model_does_not_see_the_future(order):
    model, ids, t = _model(order=order).double(), _ids(), 20
    perturbed = ids.clone()
    perturbed[:, t] = torch.where(ids[:, t] == 7, 8, 7)
    with torch.no_grad():
        a, b = model(ids), model(perturbed)
    assert (a[:, :t] - b[:, :t]).abs().max() < 1e-12  # fp64 FFT round-off only
    assert (a[:, t:] - b[:, t:]).abs().amax(-1).min() > 1e-6  # every later position sees the change


@pytest.mark.parametrize("L", [1, 17, 62, 64])
def test_any_length_up_to_l_max_equals_the_prefix_of_a_longer_run(L):
    model, ids = _model(), _ids(L=64)
    with torch.no_grad():
        full = model(ids)
        part = model(ids[:, :L])
    assert part.shape == (2, L, 16)  # vocabulary 12 padded to a multiple of 8
    torch.testing.assert_close(part, full[:, :L], rtol=1e-5, atol=1e-5)


def test_longer_than_l_max_raises():
    model = _model()
    assert model.l_max == 64
    with pytest.raises(ValueError, match="exceeds l_max=64"):
        model(_ids(L=65))


def test_shapes():
    model, ids = _model(), _ids(B=3, L=10)
    assert model.hidden_states(ids).shape == (3, 10, 32)
    assert model(ids).shape == (3, 10, 16)
    assert model.lm_head.weight is model.backbone.embeddings.word_embeddings.weight
    with pytest.raises(ValueError, match="input_ids must be"):
        model(ids[0])


# ------------------------------------------------------------------------------------------- reference oracle


class ReferenceLM(nn.Module):
    """The reference `ConvLMHeadModel` assembled from the copied standalone classes: LMBackbone, an LM head,
    `_init_weights` over everything, then the head tied to the word embeddings."""

    def __init__(self, ref, d_model, n_layer, d_inner, vocab_size, layer, **kw):
        super().__init__()
        self.backbone = ref.LMBackbone(d_model, n_layer, d_inner, vocab_size, layer=layer, **kw)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(partial(ref._init_weights, n_layer=n_layer))
        self.lm_head.weight = self.backbone.embeddings.word_embeddings.weight

    def forward(self, input_ids):
        return self.lm_head(self.backbone(input_ids))


def _reference_for(model: HyenaLM) -> nn.Module:
    pytest.importorskip("einops")
    from tests.models.reference_oracles import hyenadna_reference as ref

    kw = model.init_kwargs
    layer = dict(d_model=kw["d_model"], l_max=model.l_max, order=kw["order"], filter_order=kw["filter_order"],
                 emb_dim=kw["filter_emb_dim"], w=kw["filter_w"], lr=1e-3, wd=kw["filter_wd"],
                 lr_pos_emb=kw["lr_pos_emb"], num_inner_mlps=kw["filter_num_inner_mlps"], modulate=kw["modulate"],
                 shift=kw["modulation_shift"], modulation_lr=kw["modulation_lr"])
    return ReferenceLM(ref, kw["d_model"], kw["n_layer"], 4 * kw["d_model"], model.vocab_size, layer,
                       embed_dropout=kw["embed_dropout"], resid_dropout=kw["resid_dropout"],
                       residual_in_fp32=kw["residual_in_fp32"]).eval()


@pytest.mark.parametrize("kw", [dict(), dict(modulation_shift=0.05, lr_pos_emb=1e-5, n_layer=3)],
                         ids=["hg38_recipe", "shift_trainable_z"])
def test_logits_equal_the_reference_model_with_the_same_weights(kw):
    model = _model(**kw)
    with torch.no_grad():  # random norms and biases too, so every parameter matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    reference = _reference_for(model)
    assert set(reference.state_dict()) == set(model.state_dict())  # same keys (the order of two differs)
    reference.load_state_dict(model.state_dict(), strict=True)
    ids = _ids(L=64)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference(ids), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.hidden_states(ids[:, :33]), reference.backbone(ids[:, :33]),
                                   rtol=1e-5, atol=1e-5)


def test_filter_buffers_and_frequencies_equal_the_reference_init():
    model = _model(lr_pos_emb=1e-5)
    reference = _reference_for(model).state_dict()
    for key, value in model.state_dict().items():
        if key.endswith(("pos_emb.z", "pos_emb.t", "modulation.deltas", ".freq")):
            assert torch.equal(value, reference[key]), key


def test_init_follows_the_reference_scheme():
    torch.manual_seed(0)
    model = HyenaLM(d_model=128, n_layer=2, max_length=64)
    sd = model.state_dict()
    std = lambda k: sd[k].std().item()  # noqa: E731
    scaled = 0.02 / math.sqrt(2 * 2)
    assert std("backbone.layers.0.mixer.out_proj.weight") == pytest.approx(scaled, rel=0.1)
    assert std("backbone.layers.1.mlp.fc2.weight") == pytest.approx(scaled, rel=0.1)
    for key in ("backbone.layers.0.mixer.in_proj.weight", "backbone.layers.1.mlp.fc1.weight",
                "backbone.embeddings.word_embeddings.weight",
                "backbone.layers.0.mixer.filter_fn.implicit_filter.2.weight"):
        assert std(key) == pytest.approx(0.02, rel=0.1), key
    for key in ("backbone.layers.0.mixer.in_proj.bias", "backbone.layers.1.mlp.fc1.bias",
                "backbone.layers.0.mixer.filter_fn.implicit_filter.0.bias"):
        assert sd[key].abs().max() == 0, key
    assert std("backbone.layers.0.mixer.filter_fn.bias") == pytest.approx(1.0, rel=0.35)  # randn, untouched
    bound = 1 / math.sqrt(3)  # short conv keeps PyTorch's default init: fan_in = kernel size 3
    assert sd["backbone.layers.0.mixer.short_filter.weight"].abs().max() <= bound
    assert std("backbone.layers.0.mixer.short_filter.weight") > 0.2


def test_construction_and_reset_draw_the_same_weights():
    a = _model()
    torch.manual_seed(0)
    b = HyenaLM(**SMALL)
    torch.manual_seed(0)
    b.reset_parameters()
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k


# ------------------------------------------------------------------------------------------- optimizer groups


def test_filter_parameters_get_their_own_optimizer_group():
    """The filter MLP's weights and Sin frequencies get the filter lr and no weight decay; its biases, like every
    bias, norm and embedding, only no weight decay (the reference's add_optimizer_hooks replaces their `_optim`)."""
    model = _model(filter_lr=6e-4, filter_wd=0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    filter_params = {id(p) for n, p in model.named_parameters() if ".implicit_filter." in n}
    assert len(filter_params) == 2 * 8  # per layer: 3 weights + 3 biases of the MLP, its last weight, Sin freq
    groups = param_groups(model)
    special = [g for g in groups if "lr" in g]
    assert len(special) == 1 and special[0]["lr"] == 6e-4 and special[0]["weight_decay"] == 0.0
    assert {id(p) for p in special[0]["params"]} == {i for i in filter_params if not names[i].endswith("bias")}
    no_decay = next(g for g in groups if g.get("weight_decay") == 0.0 and "lr" not in g)
    assert {i for i in filter_params if names[i].endswith("bias")} <= {id(p) for p in no_decay["params"]}
    assert len(groups) == 3 and not filter_params & {id(p) for p in groups[0]["params"]}
    names = dict(model.named_buffers())
    assert "backbone.layers.0.mixer.filter_fn.pos_emb.z" in names  # lr_pos_emb = 0: a buffer, as the recipe


def test_filter_lr_none_follows_the_optimizer_lr_and_trainable_z_gets_its_lr():
    model = _model(lr_pos_emb=1e-5)
    groups = param_groups(model)
    hps = sorted((tuple(sorted((k, v) for k, v in g.items() if k != "params")), len(g["params"])) for g in groups)
    decayed = 2 * 5  # per layer: in/out projection, short conv and MLP weights (norms are torch LayerNorms)
    no_decay = 2 * (8 + 1 + 4 + 5) + 3  # per layer: filter MLP, filter bias, 2 norms, 5 biases; embedding, ln_f
    assert hps == [((), decayed), ((("lr", 1e-5), ("weight_decay", 0.0)), 2), ((("weight_decay", 0.0),), no_decay)]
    opt = torch.optim.AdamW(groups, lr=3e-3)
    assert [g["lr"] for g in opt.param_groups if len(g["params"]) == no_decay] == [3e-3]


# ------------------------------------------------------------------------------------------- checkpoints


def test_save_pretrained_round_trip(tmp_path):
    model = _model(modulation_shift=0.05, gradient_checkpointing=True)
    loaded = from_pretrained(save_pretrained(model, tmp_path / "hyena"))
    assert isinstance(loaded, HyenaLM) and loaded.init_kwargs == model.init_kwargs
    assert loaded.lm_head.weight is loaded.backbone.embeddings.word_embeddings.weight
    for (k, x), (k2, y) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(x, y), k
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids), loaded(ids))


def test_reference_checkpoint_keys_load_including_checkpointed_wrappers():
    model = _model()
    ckpt = {"model." + k.replace(".mixer.", ".mixer.layer.").replace(".mlp.", ".mlp.layer."): v
            for k, v in model.state_dict().items()}
    ckpt["optimizer_states"] = torch.zeros(1)  # not part of the model
    other = _model(n_layer=2)
    torch.nn.init.zeros_(other.backbone.ln_f.weight)
    other.load_state_dict(reference_state_dict(ckpt), strict=True)
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(model(ids), other(ids))


#: the config.json of LongSafari/hyenadna-tiny-1k-seqlen (with its checkpointing switches)
RELEASED_TINY = {"d_model": 128, "n_layer": 2, "d_inner": 512, "vocab_size": 12, "resid_dropout": 0.0,
                 "embed_dropout": 0.1, "fused_mlp": False, "fused_dropout_add_ln": True, "checkpoint_mixer": True,
                 "checkpoint_mlp": True, "residual_in_fp32": True, "pad_vocab_size_multiple": 8,
                 "return_hidden_state": True,
                 "layer": {"_name_": "hyena", "emb_dim": 5, "filter_order": 64, "local_order": 3, "l_max": 1026,
                           "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}}


def test_from_reference_config_of_the_released_tiny_model():
    released = RELEASED_TINY
    model = HyenaLM.from_reference_config(released)
    assert (model.l_max, model.max_length, model.vocab_size, model.gradient_checkpointing) == (1026, 1024, 16, True)
    assert model.state_dict()["backbone.layers.1.mixer.filter_fn.pos_emb.z"].shape == (1, 1026, 5)
    assert model.backbone.layers[0].mlp.fc1.out_features == 512
    p = model.backbone.layers[0].mixer.filter_fn.implicit_filter[0].weight
    assert p._optim == {"lr": 6e-4, "weight_decay": 0.0}
    with pytest.raises(ValueError, match="unknown layer keys"):
        HyenaLM.from_reference_config({**released, "layer": {**released["layer"], "typo": 1}})
    with pytest.raises(NotImplementedError, match="num_heads"):
        HyenaLM.from_reference_config({**released, "layer": {**released["layer"], "num_heads": 2}})


def test_hyenadna_release_folder_loads_through_convert(tmp_path):
    """A HyenaDNA release folder (LongSafari/hyenadna-*: config.json + weights.ckpt, a Lightning checkpoint with
    `model.` keys and checkpoint_mixer / checkpoint_mlp wrappers) -> `dnax.convert.load_reference` -> the reference
    oracle's logits."""
    import json

    from dnax.convert import load_reference

    config = {**RELEASED_TINY, "d_model": 32, "d_inner": 128,  # smaller, same layout
              "layer": {**RELEASED_TINY["layer"], "filter_order": 16, "l_max": 66}}
    torch.manual_seed(0)
    model = HyenaLM.from_reference_config(config)
    reference = _reference_for(model)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    keys = {k: "model." + k.replace(".mixer.", ".mixer.layer.").replace(".mlp.", ".mlp.layer.")
            for k in reference.state_dict()}
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.save({"state_dict": {keys[k]: v for k, v in reference.state_dict().items()}}, tmp_path / "weights.ckpt")
    loaded = load_reference(tmp_path)
    assert type(loaded) is HyenaLM and loaded.max_length == 64
    ids = _ids(L=64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), reference(ids), rtol=1e-5, atol=1e-5)
    assert type(load_reference(tmp_path / "weights.ckpt")) is HyenaLM  # the checkpoint file itself


# ------------------------------------------------------------------------------------------- training paths


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = _ids()
    grads = []
    for ckpt in (False, True):
        model = _model(gradient_checkpointing=ckpt).train()
        F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-7, msg=name)


def test_bf16_autocast_is_close_to_fp32_and_trains():
    model, ids = _model(), _ids()
    with torch.no_grad():
        ref = model(ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()
    F.cross_entropy(low.float().flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

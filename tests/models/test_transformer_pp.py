"""Transformer++ (Llama) backbone: equal to Hugging Face's Llama (causal) and to a direct PyTorch computation (both
modes), causality, RoPE at any length, grouped-query attention, the reference key layout, init, save/load."""
from __future__ import annotations

import math

import pytest
import torch

from dnax.convert import PREFIX, load_weights_checked
from dnax.models.backbones.transformer_pp import TransformerPPLM
from dnax.models.layers.attention import meta_to_hf_rope_rows
from dnax.pretrained import from_pretrained, save_pretrained

SMALL = dict(d_model=32, n_layer=2, n_heads=4, n_kv_heads=2, hidden_dim=48, vocab_size=12, max_length=64)


def _model(**kw) -> TransformerPPLM:
    torch.manual_seed(0)
    model = TransformerPPLM(**{**SMALL, **kw}).eval()
    with torch.no_grad():  # norms start at exactly 1: perturb them so a dropped or misplaced norm shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.3 * torch.randn_like(p))
            else:
                p.mul_(10.0)  # std 0.02 makes near-uniform attention; std 0.2 exercises the softmax (fp32 noise ~3e-6)
    return model


def _ids(B=2, L=37, seed=1):
    return torch.randint(0, 12, (B, L), generator=torch.Generator().manual_seed(seed))


def _perturbed(ids, t):
    out = ids.clone()
    out[:, t] = torch.where(out[:, t] == 7, 8, 7)
    return out


# --------------------------------------------------------------------------------------------- Hugging Face Llama


def _hf_llama():
    import torchvision

    if getattr(torchvision, "IS_DNAX_STUB", False):  # the CPU stand-in lacks what transformers' image utils read
        import transformers.utils as tu
        import transformers.utils.import_utils as iu

        tu.is_torchvision_available = iu.is_torchvision_available = lambda: False
    import transformers

    return transformers


def _hf_copy(model: TransformerPPLM):
    """An HF `LlamaForCausalLM` (eager attention, not SDPA) holding `model`'s weights, wq/wk rows permuted to HF's
    rotate-half RoPE layout."""
    tf = _hf_llama()
    a, ffn_dim = model.layers[0].attention, model.layers[0].feed_forward.w1.out_features
    cfg = tf.LlamaConfig(
        vocab_size=model.vocab_size, hidden_size=model.d_model, intermediate_size=ffn_dim,
        num_hidden_layers=model.n_layer, num_attention_heads=a.n_heads, num_key_value_heads=a.n_kv_heads,
        max_position_embeddings=model.max_length, rms_norm_eps=model.norm.eps, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": model.rope_theta}, attn_implementation="eager")
    hf = tf.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        hf.model.embed_tokens.weight.copy_(model.tok_embeddings.weight)
        hf.model.norm.weight.copy_(model.norm.weight)
        for mine, theirs in zip(model.layers, hf.model.layers):
            at, ff = mine.attention, mine.feed_forward
            theirs.self_attn.q_proj.weight.copy_(meta_to_hf_rope_rows(at.wq.weight, at.n_heads))
            theirs.self_attn.k_proj.weight.copy_(meta_to_hf_rope_rows(at.wk.weight, at.n_kv_heads))
            theirs.self_attn.v_proj.weight.copy_(at.wv.weight)
            theirs.self_attn.o_proj.weight.copy_(at.wo.weight)
            theirs.mlp.gate_proj.weight.copy_(ff.w1.weight)
            theirs.mlp.up_proj.weight.copy_(ff.w3.weight)
            theirs.mlp.down_proj.weight.copy_(ff.w2.weight)
            theirs.input_layernorm.weight.copy_(mine.attention_norm.weight)
            theirs.post_attention_layernorm.weight.copy_(mine.ffn_norm.weight)
    assert hf.lm_head.weight is hf.model.embed_tokens.weight
    return hf


@pytest.mark.parametrize("L", [17, 64, 100], ids=["shorter", "max_length", "longer"])
def test_causal_mode_equals_hf_llama_at_any_length(L):
    model = _model()
    hf = _hf_copy(model)
    ids = _ids(L=L)
    with torch.no_grad():
        ref = hf(input_ids=ids)
        ref_hidden = hf.model(input_ids=ids).last_hidden_state
        logits, hidden = model(ids), model.hidden_states(ids)
    assert logits.abs().max() > 1.0  # not a degenerate comparison
    assert (logits - ref.logits).abs().max() < 1e-5
    assert (hidden - ref_hidden).abs().max() < 1e-5


# --------------------------------------------------------------------------------------------- direct computation


def _direct(model: TransformerPPLM, ids: torch.Tensor, causal: bool) -> torch.Tensor:
    """The model's logits written out in float64 with explicit loops: per-head softmax attention with a materialised
    mask, RoPE from explicit angles on (even, odd) pairs, key/value heads repeated per group."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    a = model.layers[0].attention
    H, Hkv, Dh, eps = a.n_heads, a.n_kv_heads, a.head_dim, model.norm.eps
    B, L = ids.shape

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    pos = torch.arange(L, dtype=torch.float64)[:, None]
    angle = pos * torch.tensor([model.rope_theta ** (-2 * j / Dh) for j in range(Dh // 2)], dtype=torch.float64)

    def rope(x):  # (B, L, heads, Dh)
        ev, od = x[..., 0::2], x[..., 1::2]
        c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
        return torch.stack([ev * c - od * s, ev * s + od * c], -1).flatten(-2)

    x = sd["tok_embeddings.weight"][ids]
    for i in range(model.n_layer):
        p = lambda n: sd[f"layers.{i}.{n}"]  # noqa: E731
        h = rms(x, p("attention_norm.weight"))
        q = rope((h @ p("attention.wq.weight").T).view(B, L, H, Dh))
        k = rope((h @ p("attention.wk.weight").T).view(B, L, Hkv, Dh))
        v = (h @ p("attention.wv.weight").T).view(B, L, Hkv, Dh)
        heads = []
        for hd in range(H):
            kv = hd // (H // Hkv)
            scores = q[:, :, hd] @ k[:, :, kv].transpose(1, 2) / math.sqrt(Dh)  # (B, L, L)
            if causal:
                scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
            heads.append(torch.softmax(scores, -1) @ v[:, :, kv])
        x = x + torch.cat(heads, -1) @ p("attention.wo.weight").T
        h = rms(x, p("ffn_norm.weight"))
        x = x + (torch.nn.functional.silu(h @ p("feed_forward.w1.weight").T) * (h @ p("feed_forward.w3.weight").T)
                 ) @ p("feed_forward.w2.weight").T
    return rms(x, sd["norm.weight"]) @ sd["output.weight"].T


@pytest.mark.parametrize("bidirectional", [False, True], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("L", [23, 90])
def test_both_modes_equal_a_direct_computation(bidirectional, L):
    model, ids = _model(bidirectional=bidirectional), _ids(L=L)
    with torch.no_grad():
        got = model(ids)
    assert (got.double() - _direct(model, ids, causal=not bidirectional)).abs().max() < 1e-5


def test_causal_model_does_not_see_the_future():
    model, ids, t = _model(), _ids(L=40), 20
    with torch.no_grad():
        a, b = model(ids), model(_perturbed(ids, t))
    assert torch.equal(a[:, :t], b[:, :t])  # bit for bit
    assert (a[:, t:] - b[:, t:]).abs().amax(-1).min() > 1e-6  # every later position changed


def test_bidirectional_model_sees_both_sides():
    model, ids, t = _model(bidirectional=True), _ids(L=40), 20
    with torch.no_grad():
        a, b = model(ids), model(_perturbed(ids, t))
    assert (a[:, :t] - b[:, :t]).abs().amax(-1).min() > 1e-6
    assert (a[:, t + 1:] - b[:, t + 1:]).abs().amax(-1).min() > 1e-6
    assert model.causal is False and _model().causal is True


# --------------------------------------------------------------------------------------------- grouped-query attention


@pytest.mark.parametrize("bidirectional", [False, True])
def test_grouped_query_attention_equals_multi_head_with_repeated_kv_heads(bidirectional):
    gqa = _model(n_heads=4, n_kv_heads=1, bidirectional=bidirectional)  # multi-query: one kv head for four
    mha = TransformerPPLM(**{**SMALL, "n_heads": 4, "n_kv_heads": 4, "bidirectional": bidirectional}).eval()
    sd = gqa.state_dict()
    Dh = gqa.layers[0].attention.head_dim
    for i in range(gqa.n_layer):
        for w in ("wk", "wv"):
            key = f"layers.{i}.attention.{w}.weight"
            sd[key] = sd[key].view(1, Dh, -1).expand(4, Dh, -1).reshape(4 * Dh, -1)
    mha.load_state_dict(sd)
    ids = _ids(L=30)
    with torch.no_grad():
        assert (gqa(ids) - mha(ids)).abs().max() < 1e-5
    assert gqa.layers[0].attention.wk.weight.shape == (Dh, 32)


def test_bad_head_counts_raise():
    with pytest.raises(ValueError, match="n_kv_heads"):
        TransformerPPLM(**{**SMALL, "n_heads": 4, "n_kv_heads": 3})
    with pytest.raises(ValueError, match="n_heads"):
        TransformerPPLM(**{**SMALL, "n_heads": 5, "n_kv_heads": 5})


# --------------------------------------------------------------------------------------------- reference layout, init


REFERENCE_YAML = dict(  # DNA-xLSTM configs/model/llama.yaml
    _target_="models.llama.modelling_llama.TransformerConfig", d_model=256, n_layer=4, bidirectional=False,
    max_length=1024, vocab_size=12, n_heads=16, n_kv_heads=16, hidden_dim=None, multiple_of=8, norm_eps=1e-5,
    dropout=0.0)


def test_reference_key_layout_and_lightning_checkpoint_load():
    model = TransformerPPLM.from_reference_config({"config": REFERENCE_YAML}, n_layer=2)
    per_layer = [f"attention.{w}.weight" for w in ("wq", "wk", "wv", "wo")] + [
        f"feed_forward.{w}.weight" for w in ("w1", "w2", "w3")] + ["attention_norm.weight", "ffn_norm.weight"]
    expected = ["tok_embeddings.weight"] + [f"layers.{i}.{k}" for i in range(2) for k in per_layer] + [
        "norm.weight", "output.weight"]
    sd = model.state_dict()
    assert list(sd) == expected
    assert sd["layers.0.feed_forward.w1.weight"].shape == (688, 256)  # 2/3 * 4 * 256 = 682, up to a multiple of 8
    assert model.tok_embeddings.weight is model.output.weight and model.causal
    # a Lightning state dict (`model.backbone.` + keys) loads strictly once the prefix is removed
    other = TransformerPPLM.from_reference_config(REFERENCE_YAML, n_layer=2)
    lightning = {PREFIX + k: v.clone() for k, v in sd.items()}
    load_weights_checked(other, {k[len(PREFIX):]: v for k, v in lightning.items()})
    ids = _ids(L=12)
    with torch.no_grad():
        assert torch.equal(other(ids), model(ids))
    with pytest.raises(TypeError):
        TransformerPPLM.from_reference_config({"config": {**REFERENCE_YAML, "n_layers": 3}})


def test_init_follows_the_reference():
    torch.manual_seed(0)
    model = TransformerPPLM(d_model=256, n_layer=4, n_heads=8, hidden_dim=1024)
    residual = 0.02 / math.sqrt(8)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        else:
            std = residual if name.endswith(("wo.weight", "w3.weight")) else 0.02
            assert abs(p.std().item() / std - 1) < 0.05 and abs(p.mean().item()) < 3 * std / math.sqrt(p.numel()), name
    torch.manual_seed(5)
    a = TransformerPPLM(**SMALL).state_dict()
    torch.manual_seed(5)
    b = TransformerPPLM(**SMALL).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_untied_embeddings():
    model = _model(tie_embeddings=False)
    assert model.tok_embeddings.weight is not model.output.weight
    assert not torch.equal(model.tok_embeddings.weight, model.output.weight)


# --------------------------------------------------------------------------------------------- training switches


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = _ids(L=24)
    grads = []
    for ckpt in (False, True):
        model = _model(gradient_checkpointing=ckpt).train()
        model(ids).square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-7, rtol=1e-5) for n in grads[0])


def test_dropout_is_active_in_training_only():
    model, ids = _model(dropout=0.3), _ids(L=24)
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))
        model.train()
        assert not torch.allclose(model(ids), model(ids))


# --------------------------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("tie", [True, False])
def test_save_pretrained_roundtrip(tmp_path, tie):
    model, ids = _model(tie_embeddings=tie, bidirectional=True), _ids(L=70)
    save_pretrained(model, tmp_path / "tpp")
    loaded = from_pretrained(tmp_path / "tpp")
    assert type(loaded) is TransformerPPLM and loaded.init_kwargs == model.init_kwargs
    assert (loaded.tok_embeddings.weight is loaded.output.weight) == tie
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))

"""Optimizer parameter groups (`dnax.train.param_groups`) follow the reference's `add_optimizer_hooks` with
`bias_weight_decay: False, normalization_weight_decay: False`: biases, `_no_weight_decay` parameters (Mamba's A_log,
D) and the parameters of `nn.Embedding` / torch normalization modules get no weight decay; the reference's own
xLSTM LayerNorm and Mamba / Llama RMSNorm are plain modules there, so their weights keep it."""
import pytest
import torch

from dnax.models.backbones.caduceus import CaduceusLM
from dnax.models.backbones.cnn import GenomicBenchmarksCNN
from dnax.models.backbones.mamba import MambaLM
from dnax.models.backbones.transformer_pp import TransformerPPLM
from dnax.models.backbones.xlstm import XLSTMLM
from dnax.models.classifier import SequenceClassifier
from dnax.models.lm import DnaLM
from dnax.models.objectives import MaskedLM
from dnax.train import param_groups


def _split(model, groups=None):
    """(decayed names, names with weight_decay 0) of `model`'s parameter groups."""
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, no_decay = set(), set()
    for g in groups if groups is not None else param_groups(model):
        (no_decay if g.get("weight_decay") == 0.0 else decayed).update(names[id(p)] for p in g["params"])
    assert decayed.isdisjoint(no_decay) and decayed | no_decay == set(names.values())
    return decayed, no_decay


def _biases(model):
    return {n for n, _ in model.named_parameters() if n.endswith("bias")}


def test_xlstm_embedding_and_biases_only():
    torch.manual_seed(0)
    model = XLSTMLM(d_model=32, n_layer=2, m_num_heads=2, s_num_heads=2, m_qkv_proj_blocksize=4, s_lstm_at=[1],
                    m_bias=True)
    decayed, no_decay = _split(model)
    assert no_decay == {"token_embedding.weight"} | _biases(model)
    # xlstm's LayerNorm is not a torch norm; the sLSTM cell's `_bias_` does not end in "bias"; the head is untied
    assert {"xlstm_block_stack.post_blocks_norm.weight", "xlstm_block_stack.blocks.1.xlstm.slstm_cell._bias_",
            "lm_head.weight", "xlstm_block_stack.blocks.0.xlstm.learnable_skip"} <= decayed


def test_mamba_and_caduceus_embedding_a_log_d_and_biases():
    torch.manual_seed(0)
    mamba = MambaLM(d_model=32, n_layer=2)
    decayed, no_decay = _split(mamba)
    ssm = {f"backbone.layers.{i}.mixer.{n}" for i in range(2) for n in ("A_log", "D")}
    assert no_decay == {"backbone.embedding.weight"} | ssm | _biases(mamba)  # the tied head is the embedding
    assert {"backbone.norm_f.weight", "backbone.layers.0.norm.weight"} <= decayed  # RMSNorm
    caduceus = CaduceusLM(d_model=32, n_layer=1, rcps=True)
    decayed, no_decay = _split(caduceus)
    ssm = {f"caduceus.backbone.layers.0.mixer.submodule.mamba_{d}.{n}" for d in ("fwd", "rev") for n in ("A_log", "D")}
    assert no_decay == {"caduceus.backbone.embeddings.word_embeddings.embedding.weight"} | ssm | _biases(caduceus)


def test_transformer_pp_tied_embedding_only():
    decayed, no_decay = _split(TransformerPPLM(d_model=32, n_layer=1, n_heads=4))
    assert no_decay == {"tok_embeddings.weight"} and "norm.weight" in decayed


def test_the_rule_covers_the_backbone_of_a_composer_model_not_its_head():
    """As the reference applies its hooks to the backbone only: a fine-tuning head (its decoder) keeps weight
    decay on its bias too; the switches turn the exclusions off."""
    torch.manual_seed(0)
    backbone = XLSTMLM(d_model=32, n_layer=1, m_num_heads=2, m_qkv_proj_blocksize=4, m_bias=True)
    lm = DnaLM(backbone, MaskedLM())
    assert _split(lm)[1] == {"backbone." + n for n in {"token_embedding.weight"} | _biases(backbone)}
    classifier = SequenceClassifier(GenomicBenchmarksCNN(max_length=64), num_classes=2)
    decayed, no_decay = _split(classifier)
    assert {n for n in decayed | no_decay if n.startswith("head.")} <= decayed
    assert "backbone.embeddings.weight" in no_decay
    decayed, no_decay = _split(lm, param_groups(lm, bias_weight_decay=True))
    assert no_decay == {"backbone.token_embedding.weight"}


@pytest.mark.parametrize("normalization_weight_decay", [False, True])
def test_torch_norms_follow_the_normalization_switch(normalization_weight_decay):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.LayerNorm(4, bias=False))
    _, no_decay = _split(model, param_groups(model, normalization_weight_decay=normalization_weight_decay))
    assert no_decay == (set() if normalization_weight_decay else {"1.weight"})

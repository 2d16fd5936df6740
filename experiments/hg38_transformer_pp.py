"""Transformer++ (Llama) pretraining on hg38: the attention baseline next to xLSTM in Bio-xLSTM's DNA experiments
(Schmidinger et al. 2024, Sec. 4.1, the Transformer++ rows and curves beside xLSTM in Tab. 1-2, Fig. 3).

Settings follow DNA-xLSTM `scripts_pretrain/run_pretrain_llama.sh` with `configs/model/llama.yaml`: d_model 256,
4 blocks, 8 heads (8 key/value heads), SwiGLU hidden 1024, RMSNorm eps 1e-5, RoPE theta 10000, tied embedding and
head, no dropout, bidirectional attention with MLM 15 %; and the shared hg38 recipe (`experiments.common.pretrain`:
1k windows, 2^20 tokens per step, 10k steps, AdamW lr 8e-3 wd 0.1, RC augmentation, bf16). The causal variant trains
next-token prediction; the 32k variants reuse `experiments.common.at_32k`.

    python -m dnax.run experiments.hg38_transformer_pp            # the paper run (needs hg38 MDS shards, GPU)
    python -m dnax.run experiments.hg38_transformer_pp sample     # the same model on the bundled chrX sample, CPU
"""
from __future__ import annotations

import fiddle as fdl

from dnax.models.backbones.transformer_pp import TransformerPPLM
from dnax.models.objectives import CausalLM
from experiments.common import at_32k, experiment, pretrain, with_overrides


def transformer_pp_backbone(**overrides) -> fdl.Config:
    """The DNA-xLSTM Llama backbone of the pretraining script (~4.2M parameters): bidirectional attention."""
    cfg = fdl.Config(
        TransformerPPLM,
        d_model=256,
        n_layer=4,
        n_heads=8,
        n_kv_heads=8,
        hidden_dim=1024,
        multiple_of=8,
        norm_eps=1e-5,
        dropout=0.0,
        bidirectional=True,
    )
    return with_overrides(cfg, **overrides)


@experiment
def hg38_transformer_pp() -> fdl.Partial:
    """Bidirectional Transformer++ MLM at 1k context (`run_pretrain_llama.sh` as released: BIDIR=true, MLM 15 %).
    Expected: validation MLM loss well below the order-0 baseline (~1.37 nats on hg38)."""
    return pretrain(transformer_pp_backbone(), mlm=True)


@experiment
def hg38_transformer_pp_clm() -> fdl.Partial:
    """Causal Transformer++, next-token prediction (CLM) at 1k context: the attention baseline of the causal
    comparison with xLSTM (Bio-xLSTM Fig. 3 left)."""
    cfg = hg38_transformer_pp()
    cfg.model.backbone.bidirectional = False
    cfg.model.objective = fdl.Config(CausalLM)
    return cfg


@experiment
def hg38_transformer_pp_32k() -> fdl.Partial:
    """Bidirectional Transformer++ MLM at 32k context, same 2^20 tokens per step (32 windows)."""
    return at_32k(hg38_transformer_pp())


@experiment
def hg38_transformer_pp_clm_32k() -> fdl.Partial:
    """Causal Transformer++ at 32k context (long-context CLM comparison, Bio-xLSTM Fig. 3)."""
    return at_32k(hg38_transformer_pp_clm())

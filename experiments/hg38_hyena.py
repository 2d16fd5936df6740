"""HyenaDNA pretraining on hg38: the causal HyenaDNA baseline of Bio-xLSTM's DNA pretraining comparison
(Schmidinger et al. 2024, Sec. 4.1), as DNA-xLSTM runs it.

Settings follow DNA-xLSTM `scripts_pretrain/run_pretrain_hyena.sh` with `configs/experiment/hg38/hg38.yaml`
(the hg38 recipe of `experiments.common.pretrain`): 1k windows, 2^20 tokens per step, 10k steps, AdamW lr 6e-4
betas (0.9, 0.95) wd 0.1, 10 % warmup then cosine to 1e-4, grad clip 1.0, bf16, RC augmentation, next-token
prediction (CLM). The model is HyenaDNA's `lm` with a `hyena` layer as in hyena-dna
`configs/experiment/hg38/hg38_hyena.yaml`: order 2, filter MLP width 64 on 5 positional features, Sin frequency
10, short conv 3, filter lr = the optimizer's lr with no weight decay, fixed positional features and decay rates,
filter length = context + 2, embedding dropout 0.1, d_inner 4 d_model, vocabulary padded to 16.

    python -m dnax.run experiments.hg38_hyena            # the paper run (needs hg38 MDS shards, GPU)
    python -m dnax.run experiments.hg38_hyena sample     # the same model on the bundled chrX sample, CPU
"""
from __future__ import annotations

import fiddle as fdl

from dnax.models.backbones.hyena import HyenaLM
from experiments.common import at_32k, experiment, pretrain, with_overrides


def hyena_backbone(**overrides) -> fdl.Config:
    """The DNA-xLSTM HyenaDNA baseline (~3.3M parameters): d_model 256, 4 blocks, reference `hyena` layer."""
    cfg = fdl.Config(
        HyenaLM,
        d_model=256,
        n_layer=4,
        order=2,
        filter_order=64,
        short_filter_order=3,
        filter_emb_dim=5,
        filter_w=10.0,
        filter_lr=None,  # the reference recipe's `layer.lr: ${optimizer.lr}`
        filter_wd=0.0,
        lr_pos_emb=0.0,
        modulate=True,
        embed_dropout=0.1,
        resid_dropout=0.0,
        residual_in_fp32=True,
        pad_vocab_size_multiple=8,
    )
    return with_overrides(cfg, **overrides)


@experiment
def hg38_hyena() -> fdl.Partial:
    """Causal HyenaDNA at 1k context (DNA-xLSTM `run_pretrain_hyena.sh`). Expected: validation next-token loss
    below the order-0 entropy of hg38 (~1.37 nats)."""
    return pretrain(hyena_backbone(), mlm=False, lr=6e-4)


@experiment
def hg38_hyena_32k() -> fdl.Partial:
    """Causal HyenaDNA at 32k context, same 2^20 tokens per step (32 windows); the filter spans 32k + 2."""
    return at_32k(hg38_hyena())

"""Causal Mamba pretraining on hg38 (Bio-xLSTM, DNA part: Schmidinger et al. 2024, Tab. 1 / Fig. 3, Mamba CLM rows).

Settings follow DNA-xLSTM `scripts_pretrain/run_pretrain_mamba.sh` (and caduceus `slurm_scripts/run_pretrain_mamba.sh`):
next-token prediction (CLM), 1k windows, 2^20 tokens per step, 10k steps, AdamW lr 8e-3 betas (0.9, 0.95) wd 0.1,
10 % warmup then cosine, grad clip 1.0, bf16, RC augmentation on. Model: `MambaLMHeadModel` with RMSNorm pre-norm
residual blocks, d_state 16, d_conv 4, expand 2, vocab padded to 16, tied embedding/head. d_model 128 is the
~0.5M-parameter size of the paper's tables; the scripts' default D_MODEL=256 is `hg38_mamba_2m`.
d_state: the scripts pass no `ssm_cfg`, so the reference's `configs/model/mamba.yaml` decides, and DNA-xLSTM's copy
of that file could not be read here; caduceus's copy sets d_state 128. dnax uses the Caduceus `ssm_cfg` (d_state
16, 468,608 parameters at d_model 128); `model.backbone.ssm_cfg.d_state=128` runs caduceus's setting (812,672).

    python -m dnax.run experiments.hg38_mamba            # the paper run (needs hg38 MDS shards, GPU)
    python -m dnax.run experiments.hg38_mamba sample     # the same model on the bundled chrX sample, CPU
"""
from __future__ import annotations

import fiddle as fdl

from dnax.models.backbones.mamba import MambaLM
from experiments.common import at_32k, experiment, pretrain, with_overrides

#: the reference `ssm_cfg` (caduceus / DNA-xLSTM `configs/model/caduceus.yaml`), shared with hg38_caduceus
SSM_CFG = dict(d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001, dt_max=0.1, dt_init="random",
               dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True, bias=False)
INITIALIZER_CFG = dict(initializer_range=0.02, rescale_prenorm_residual=True, n_residuals_per_layer=1)


def mamba_backbone(**overrides) -> fdl.Config:
    """Causal Mamba LM: 4 RMSNorm pre-norm residual Mamba blocks, d_model 128, vocab 12 padded to 16, tied head."""
    cfg = fdl.Config(MambaLM, d_model=128, n_layer=4, vocab_size=12, pad_vocab_size_multiple=8,
                     ssm_cfg=dict(SSM_CFG), rms_norm=True, fused_add_norm=True, residual_in_fp32=False,
                     initializer_cfg=dict(INITIALIZER_CFG))
    return with_overrides(cfg, **overrides)


@experiment
def hg38_mamba() -> fdl.Partial:
    """Causal Mamba, next-token prediction at 1k context with RC augmentation (Bio-xLSTM Tab. 1, Mamba CLM).
    Expected: validation CLM loss below the order-0 baseline (~1.37 nats on hg38), close to causal xLSTM's."""
    return pretrain(mamba_backbone(), mlm=False)


@experiment
def hg38_mamba_2m() -> fdl.Partial:
    """The d_model 256 size of `hg38_mamba` (the pretraining script's default D_MODEL)."""
    cfg = hg38_mamba()
    cfg.model.backbone.d_model = 256
    return cfg


@experiment
def hg38_mamba_32k() -> fdl.Partial:
    """Causal Mamba at 32k context with the same 2^20 tokens per step (32 windows) (Bio-xLSTM Fig. 3, long-context
    CLM)."""
    return at_32k(hg38_mamba())


@experiment
def hg38_mamba2() -> fdl.Partial:
    """`hg38_mamba` with the Mamba2 mixer (mamba_ssm's Mamba2 defaults: d_state 128, head dim 64, chunk 256; an
    option beside the paper's Mamba rows, not one of them). Runs on CPU through dnax's chunked SSD scan."""
    cfg = hg38_mamba()
    cfg.model.backbone.ssm_cfg = dict(layer="Mamba2", d_state=128, d_conv=4, expand=2, headdim=64, chunk_size=256)
    return cfg

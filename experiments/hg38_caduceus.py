"""Caduceus pretraining on hg38, MLM (Bio-xLSTM, DNA part: Tab. 1, Caduceus-PH / Caduceus-PS rows; Schiff et al. 2024).

Settings follow DNA-xLSTM `scripts_pretrain/run_pretrain_caduceus.sh` (caduceus `slurm_scripts/run_pretrain_caduceus.sh`
for the same flags): masked LM 15 % (80/10/10), 1k windows, 2^20 tokens per step, 10k steps, AdamW lr 8e-3 betas
(0.9, 0.95) wd 0.1, 10 % warmup then cosine, grad clip 1.0, bf16; BiMamba with "add" and tied in/out projections,
RMSNorm, fused add+norm (the reference kernel branch, see `dnax.models.backbones.caduceus`), d_state 16, vocab padded to
16, tied LM head. Two ways to handle both strands:

- PS (`rcps=True`): RC-equivariant by parameter sharing, `RC_AUG=false` (no augmentation needed).
- PH (`rcps=False`): RC augmentation in training; evaluate with post-hoc conjoining
  (`dnax.models.backbones.caduceus.conjoin` / `CaduceusLM.conjoined_logits`; downstream heads average both strands).

d_model 128 / 4 layers is the ~0.5M-parameter size of the paper's tables (the script's default D_MODEL is 256).

    python -m dnax.run experiments.hg38_caduceus.hg38_caduceus_ps           # the paper run (hg38 MDS, GPU)
    python -m dnax.run experiments.hg38_caduceus.hg38_caduceus_ps sample    # bundled chrX sample, CPU
"""
from __future__ import annotations

import fiddle as fdl

from dnax.models.backbones.caduceus import CaduceusLM
from experiments.common import at_32k, experiment, pretrain, with_overrides
from experiments.hg38_mamba import INITIALIZER_CFG, SSM_CFG


def caduceus_backbone(rcps: bool, **overrides) -> fdl.Config:
    """Caduceus (CaduceusForMaskedLM) as in DNA-xLSTM `configs/model/caduceus.yaml` + the pretraining script."""
    cfg = fdl.Config(CaduceusLM, d_model=128, n_layer=4, vocab_size=12, pad_vocab_size_multiple=8,
                     ssm_cfg=dict(SSM_CFG), rms_norm=True, fused_add_norm=True, residual_in_fp32=False,
                     norm_epsilon=1e-5, initializer_cfg=dict(INITIALIZER_CFG), bidirectional=True,
                     bidirectional_strategy="add", bidirectional_weight_tie=True, rcps=rcps)
    return with_overrides(cfg, **overrides)


@experiment
def hg38_caduceus_ph() -> fdl.Partial:
    """Caduceus-PH: BiMamba MLM with RC augmentation (p = 0.5) at 1k (Bio-xLSTM Tab. 1).
    Expected: validation MLM loss well below the order-0 baseline (~1.37 nats on hg38)."""
    return pretrain(caduceus_backbone(rcps=False), mlm=True, rc_aug=True)


@experiment
def hg38_caduceus_ps() -> fdl.Partial:
    """Caduceus-PS: RC-equivariant (RCPS) BiMamba MLM, no RC augmentation, at 1k (Bio-xLSTM Tab. 1)."""
    return pretrain(caduceus_backbone(rcps=True), mlm=True, rc_aug=False)


@experiment
def hg38_caduceus_ph_32k() -> fdl.Partial:
    """Caduceus-PH at 32k context (Bio-xLSTM Tab. 1, 32k rows)."""
    return at_32k(hg38_caduceus_ph())


@experiment
def hg38_caduceus_ps_32k() -> fdl.Partial:
    """Caduceus-PS at 32k context (Bio-xLSTM Tab. 1, 32k rows)."""
    return at_32k(hg38_caduceus_ps())

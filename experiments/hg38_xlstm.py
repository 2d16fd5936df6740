"""xLSTM pretraining on hg38 (Bio-xLSTM, DNA part: Schmidinger et al. 2024, Sec. 4.1 / Tab. 1-2, Fig. 3).

Settings follow DNA-xLSTM `scripts_pretrain/run_pretrain_xlstm.sh` and `configs/experiment/hg38/hg38.yaml`:
1k windows, 2^20 tokens per step, 10k steps, AdamW lr 8e-3 betas (0.9, 0.95) wd 0.1, 10 % warmup then cosine,
grad clip 1.0, bf16, RC augmentation, MLM 15 % (80/10/10) for bidirectional models, CLM for causal ones.
Each variant calls the base and changes what differs.

    python -m dnax.run experiments.hg38_xlstm            # the paper run (needs hg38 MDS shards, GPU)
    python -m dnax.run experiments.hg38_xlstm sample     # the same model on the bundled chrX sample, CPU
"""
from __future__ import annotations

import fiddle as fdl

from dnax.algorithms.reverse_complement import ReverseComplementAugmentation
from dnax.models.backbones.xlstm import XLSTMLM
from dnax.models.objectives import CausalLM
from experiments.common import at_32k, experiment, pretrain, with_overrides


def mlstm_backbone(**overrides) -> fdl.Config:
    """The DNA-xLSTM mLSTM backbone (~500k parameters at d_model 128): 4 blocks, 4 heads, up-projection 2.0,
    block-diagonal qkv (block size 4), causal conv k=4, RoPE, biases; weight-shared flip-and-add bidirectional."""
    cfg = fdl.Config(
        XLSTMLM,
        d_model=128,
        n_layer=4,
        m_num_heads=4,
        m_proj_factor=2.0,
        m_qkv_proj_blocksize=4,
        m_conv1d_kernel_size=4,
        m_conv1d_causal=True,
        m_position_embeddings=True,
        m_bias=True,
        bidirectional=True,
        bidirectional_alternating=False,
    )
    return with_overrides(cfg, **overrides)


@experiment
def hg38_xlstm() -> fdl.Partial:
    """xLSTM-DNA MLM, weight-shared flip-and-add bidirectional mLSTM, 1k context (Bio-xLSTM Tab. 1, MLM rows).
    Expected: validation MLM loss well below the order-0 baseline (~1.37 nats on hg38)."""
    return pretrain(mlstm_backbone(), mlm=True)


@experiment
def hg38_xlstm_2m() -> fdl.Partial:
    """The ~2M-parameter size (d_model 256) of `hg38_xlstm`, as in the pretraining script's default D_MODEL."""
    cfg = hg38_xlstm()
    cfg.model.backbone.d_model = 256
    return cfg


@experiment
def hg38_xlstm_clm() -> fdl.Partial:
    """Causal xLSTM-DNA, next-token prediction (CLM) at 1k (Bio-xLSTM Tab. 1, CLM rows; Fig. 3 left)."""
    cfg = hg38_xlstm()
    cfg.model.backbone.bidirectional = False
    cfg.model.objective = fdl.Config(CausalLM)
    return cfg


@experiment
def hg38_xlstm_32k() -> fdl.Partial:
    """MLM flip-and-add xLSTM at 32k context, same 2^20 tokens per step (32 windows) (Bio-xLSTM Tab. 1, 32k rows)."""
    return at_32k(hg38_xlstm())


@experiment
def hg38_xlstm_clm_32k() -> fdl.Partial:
    """Causal xLSTM at 32k context (Bio-xLSTM Fig. 3, long-context CLM)."""
    return at_32k(hg38_xlstm_clm())


@experiment
def hg38_xlstm_native_bidirectional() -> fdl.Partial:
    """MLM with the native (non-causal) bidirectional mLSTM cell instead of flip-and-add (DNA-xLSTM
    `m_backend_bidirectional=true`; Bio-xLSTM ablation of bidirectionality)."""
    cfg = hg38_xlstm()
    cfg.model.backbone.m_backend_bidirectional = True  # with bidirectional=True, as the reference selects it
    return cfg


@experiment
def hg38_xlstm_native_bidirectional_32k() -> fdl.Partial:
    """Native bidirectional MLM at 32k context: impossible in the reference (its quadratic cell runs out of memory
    even at batch 1 on an H200); here the chunkwise form, in linear memory, with the cells recomputed in backward
    (`m_recompute_cell`: ~8.6 GiB of saved activations at 4 x 32768 for the 2M model instead of ~24, counted on
    CPU under bf16 autocast; `m_backend='kernel'` selects the linear-memory Triton kernel on GPU)."""
    cfg = at_32k(hg38_xlstm_native_bidirectional())
    cfg.model.backbone.m_recompute_cell = True
    return cfg


@experiment
def hg38_xlstm_alternating() -> fdl.Partial:
    """MLM with consecutive blocks running in alternating directions instead of weight-shared flip-and-add
    (DNA-xLSTM `bidirectional_alternating=true`)."""
    cfg = hg38_xlstm()
    cfg.model.backbone.bidirectional_alternating = True
    return cfg


@experiment
def hg38_xlstm_slstm() -> fdl.Partial:
    """sLSTM-only xLSTM-DNA (`s_lstm_at=[0,1,2,3]`, 4 heads, gated FFN proj 1.1 rounded to a multiple of 8), MLM
    flip-and-add: the pretraining script's default sLSTM settings, at the ~500k size (d_model 128; the script's
    default D_MODEL is 256, `model.backbone.d_model=256`)."""
    cfg = hg38_xlstm()
    backbone = cfg.model.backbone
    backbone.s_lstm_at = [0, 1, 2, 3]
    backbone.s_num_heads = 4
    backbone.s_proj_factor = 1.1
    backbone.s_round_proj_up_dim_up = False
    backbone.s_round_proj_up_to_multiple_of = 8
    return cfg


@experiment
def hg38_xlstm_slstm_rcps() -> fdl.Partial:
    """Reverse-complement-equivariant sLSTM xLSTM-DNA via parameter sharing (xLSTM-PS; DNA-xLSTM `rcps=true`,
    `rc_aug=false`: PS models need no RC augmentation; Bio-xLSTM Tab. 1, PS rows)."""
    cfg = hg38_xlstm_slstm()
    cfg.model.backbone.rcps = True
    cfg.trainer.algorithms = [a for a in cfg.trainer.algorithms
                              if a.__fn_or_cls__ is not ReverseComplementAugmentation]
    return cfg

"""Nucleotide Transformer benchmark fine-tuning, one experiment per task (Bio-xLSTM DNA part, NT table; Caduceus
protocol: 10 seeds, each its own 90/10 train/validation split, test split scored once).

Settings follow DNA-xLSTM `scripts_downstream/run_nucleotide.sh` and
`configs/experiment/hg38/nucleotide_transformer.yaml`:
the ~2M-parameter xLSTM (`hg38_xlstm.mlstm_backbone(d_model=256)`), 20 epochs, global batch 128 (the script sweeps
64 and 128), AdamW lr 1e-3 (swept over `LR_SWEEP`), betas (0.9, 0.999), weight decay 0.1, no RC augmentation,
post-hoc conjoining at evaluation (xLSTM-PH). Headline metric per task (`dnax.data.downstream.NUCLEOTIDE_TRANSFORMER`):
MCC for histone marks and enhancers, F1 for promoters and splice donors/acceptors, accuracy for splice_sites_all.

    python -m dnax.run experiments.nucleotide_transformer.H3K4me3 from_run('runs/<pretraining run>')
    python -m dnax.sweep 'experiments.nucleotide_transformer.*'          # 18 tasks x 10 seeds x 5 lrs
"""
from __future__ import annotations

import fiddle as fdl

from dnax.data.downstream import NUCLEOTIDE_TRANSFORMER
from experiments.common import experiment
from experiments.downstream import LR_SWEEP, finetune
from experiments.downstream import cnn, frozen, from_run, lr, sample, seed, tiny  # noqa: F401  fiddlers for dnax.run
from experiments.hg38_xlstm import mlstm_backbone

#: the reference protocol, read by `python -m dnax.sweep` when --seeds / --lrs are not given
SWEEP = {"seeds": tuple(range(1, 11)), "lrs": LR_SWEEP}


def nucleotide_transformer(name: str) -> fdl.Partial:
    """The fine-tuning config of Nucleotide Transformer (v1) task `name`."""
    return finetune(f"nucleotide_transformer/{name}", NUCLEOTIDE_TRANSFORMER[name], mlstm_backbone(d_model=256),
                    epochs=20, batch_size=128, lr=1e-3, rc_mode="ph", rc_aug=False)


def _register(name: str) -> None:
    spec = NUCLEOTIDE_TRANSFORMER[name]

    def fn() -> fdl.Partial:
        return nucleotide_transformer(name)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = (f"Nucleotide Transformer `{name}` ({spec.num_classes} classes, max length {spec.max_length}): "
                  f"xLSTM-PH fine-tuning, headline {spec.metric}; expected above the CNN baseline (`cnn` fiddler).")
    globals()[name] = experiment(fn)


for _name in NUCLEOTIDE_TRANSFORMER:
    _register(_name)

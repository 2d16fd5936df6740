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
from dnax.sweep import Anchor
from experiments.downstream import LR_SWEEP, finetune, register_tasks
from experiments.downstream import (  # noqa: F401  fiddlers for dnax.run
    cnn, custom, data_dir, frozen, from_reference, from_run, lr, sample, seed, tiny)
from experiments.hg38_xlstm import mlstm_backbone

#: the reference protocol, read by `python -m dnax.sweep` when --seeds / --lrs are not given
SWEEP = {"seeds": tuple(range(1, 11)), "lrs": LR_SWEEP}

# Published test scores (mean over 10 seeds) shown beside the sweep results. Source: Schiff et al. 2024, "Caduceus:
# Bi-Directional Equivariant Long-Range DNA Sequence Modeling", arXiv:2403.03234v2 (ICML 2024), Table 2 ("Nucleotide
# Transformer Tasks. Performance across 10-fold CV"), columns Caduceus-Ph (1.9M) and Caduceus-PS (1.9M). Its metrics:
# MCC for histone marks and enhancer annotation, F1 for promoters and splice acceptor/donor, accuracy for splice
# sites "all" (the same headline metrics as `NUCLEOTIDE_TRANSFORMER`); the reference code averages MCC and F1 over
# evaluation batches, dnax computes them over the whole split (`dnax.models.classification_metrics`). The Bio-xLSTM
# numbers (arXiv:2411.04165) are not entered: their table text could not be retrieved to check them.
_CADUCEUS_TAB2 = {  # task: (metric, Caduceus-Ph, Caduceus-PS)
    "H3": ("MCC", 0.815, 0.799),
    "H3K14ac": ("MCC", 0.631, 0.541),
    "H3K36me3": ("MCC", 0.601, 0.609),
    "H3K4me1": ("MCC", 0.523, 0.488),
    "H3K4me2": ("MCC", 0.487, 0.388),
    "H3K4me3": ("MCC", 0.544, 0.440),
    "H3K79me3": ("MCC", 0.697, 0.676),
    "H3K9ac": ("MCC", 0.622, 0.604),
    "H4": ("MCC", 0.811, 0.789),
    "H4ac": ("MCC", 0.621, 0.525),
    "enhancers": ("MCC", 0.546, 0.491),
    "enhancers_types": ("MCC", 0.439, 0.416),
    "promoter_all": ("F1", 0.970, 0.967),
    "promoter_no_tata": ("F1", 0.969, 0.968),
    "promoter_tata": ("F1", 0.953, 0.957),
    "splice_sites_all": ("Accuracy", 0.940, 0.927),
    "splice_sites_acceptors": ("F1", 0.937, 0.936),
    "splice_sites_donors": ("F1", 0.948, 0.874),
}
ANCHORS = {
    task: [Anchor(f"{model} (Schiff et al. 2024, Tab. 2)", value, metric)
           for model, value in zip(("Caduceus-Ph", "Caduceus-PS"), values)]
    for task, (metric, *values) in _CADUCEUS_TAB2.items()
}


def nucleotide_transformer(name: str) -> fdl.Partial:
    """The fine-tuning config of Nucleotide Transformer (v1) task `name`."""
    return finetune(f"nucleotide_transformer/{name}", NUCLEOTIDE_TRANSFORMER[name], mlstm_backbone(d_model=256),
                    epochs=20, batch_size=128, lr=1e-3, rc_mode="ph", rc_aug=False)


register_tasks(globals(), NUCLEOTIDE_TRANSFORMER, nucleotide_transformer, lambda name, spec: (
    f"Nucleotide Transformer `{name}` ({spec.num_classes} classes, max length {spec.max_length}): "
    f"xLSTM-PH fine-tuning, headline {spec.metric}; expected above the CNN baseline (`cnn` fiddler)."))

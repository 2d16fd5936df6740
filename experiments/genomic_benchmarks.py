"""Genomic Benchmarks fine-tuning, one experiment per task (Bio-xLSTM DNA part, Genomic Benchmarks table; the
protocol of Caduceus Tab. 1: 5 seeds, each its own 90/10 train/validation split, test split scored once).

Settings follow DNA-xLSTM `scripts_downstream/run_genomics.sh` + `configs/experiment/hg38/genomic_benchmark.yaml`:
the ~500k-parameter xLSTM (`hg38_xlstm.mlstm_backbone`, d_model 128), 10 epochs, batch 64 (the script sweeps 64
and 128), AdamW lr 6e-4 (swept over `LR_SWEEP`), betas (0.9, 0.999), weight decay 0.1, RC augmentation in
training and post-hoc conjoining at evaluation (xLSTM-PH). Headline metric: top-1 accuracy.

    python -m dnax.run experiments.genomic_benchmarks.human_nontata_promoters model.pretrained=RUN_DIR
    python -m dnax.run experiments.genomic_benchmarks.human_nontata_promoters from_run('runs/<pretraining run>')
    python -m dnax.run experiments.genomic_benchmarks.human_nontata_promoters cnn       # the GB CNN baseline
    python -m dnax.sweep 'experiments.genomic_benchmarks.*'                             # 8 tasks x 5 seeds x 5 lrs
"""
from __future__ import annotations

import fiddle as fdl

from dnax.data.downstream import GENOMIC_BENCHMARKS
from dnax.sweep import Anchor
from experiments.downstream import LR_SWEEP, finetune, register_tasks
from experiments.downstream import (  # noqa: F401  fiddlers for dnax.run
    cnn, custom, data_dir, frozen, from_reference, from_run, lr, sample, seed, tiny)
from experiments.hg38_xlstm import mlstm_backbone

#: the reference protocol, read by `python -m dnax.sweep` when --seeds / --lrs are not given
SWEEP = {"seeds": (1, 2, 3, 4, 5), "lrs": LR_SWEEP}

# Published test accuracy (mean over 5 seeds) shown beside the sweep results. Source: Schiff et al. 2024, "Caduceus:
# Bi-Directional Equivariant Long-Range DNA Sequence Modeling", arXiv:2403.03234v2 (ICML 2024), Table 1 ("Genomic
# Benchmarks. Top-1 accuracy across 5-fold cross-validation"): columns CNN (264K, trained from scratch: our `cnn`
# fiddler), Caduceus-Ph (470K) and Caduceus-PS (470K). The Bio-xLSTM numbers (arXiv:2411.04165) are not entered:
# their table text could not be retrieved to check them.
_CADUCEUS_TAB1 = {  # task: (CNN, Caduceus-Ph, Caduceus-PS)
    "dummy_mouse_enhancers_ensembl": (0.715, 0.754, 0.793),
    "demo_coding_vs_intergenomic_seqs": (0.892, 0.915, 0.910),
    "demo_human_or_worm": (0.942, 0.973, 0.968),
    "human_enhancers_cohn": (0.702, 0.747, 0.745),
    "human_enhancers_ensembl": (0.744, 0.893, 0.900),
    "human_ensembl_regulatory": (0.872, 0.872, 0.873),
    "human_ocr_ensembl": (0.698, 0.828, 0.818),
    "human_nontata_promoters": (0.861, 0.946, 0.945),
}
ANCHORS = {
    task: [Anchor(f"{model} (Schiff et al. 2024, Tab. 1)", value, "Accuracy")
           for model, value in zip(("CNN", "Caduceus-Ph", "Caduceus-PS"), values)]
    for task, values in _CADUCEUS_TAB1.items()
}


def genomic_benchmark(name: str) -> fdl.Partial:
    """The fine-tuning config of Genomic Benchmarks task `name`."""
    return finetune(f"genomic_benchmarks/{name}", GENOMIC_BENCHMARKS[name], mlstm_backbone(),
                    epochs=10, batch_size=64, lr=6e-4, rc_mode="ph", rc_aug=True)


register_tasks(globals(), GENOMIC_BENCHMARKS, genomic_benchmark, lambda name, spec: (
    f"Genomic Benchmarks `{name}` ({spec.num_classes} classes, max length {spec.max_length}): xLSTM-PH "
    f"fine-tuning, headline {spec.metric}; expected above the CNN baseline (`cnn` fiddler)."))

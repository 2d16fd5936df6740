#!/bin/bash
# The README's fine-tuning comparison: GUE mouse/3 (GUE's own train/dev/test: 1904/239/239), 4 epochs, CPU:
# xLSTM started from a dnax pretraining run vs the same xLSTM from scratch vs the Genomic Benchmarks CNN.
#   bash docs/gue_mouse3_demo.sh runs/<hg38_xlstm sample run>     (from the repository root, after `make demo`)
# GUE data: $DNAX_GUE_DIR, else ../shared/data/gue beside the checkout. Results: runs/{pretrained,scratch,cnn}/.
set -euo pipefail
PRE=${1:?give the pretraining run directory, e.g. runs/hg38_xlstm-sample-...}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1  # two cells at a time on 2 cores
$PY -m dnax.sweep experiments.gue --seeds 1-2 --lrs 6e-4 --pool 2 --name pretrained sample "from_run('$PRE')" "trainer.max_duration='4ep'"
$PY -m dnax.sweep experiments.gue --seeds 1-2 --lrs 6e-4 --pool 2 --name scratch sample "trainer.max_duration='4ep'"
$PY -m dnax.sweep experiments.gue --seeds 1-3 --lrs 1e-3 --pool 2 --name cnn sample cnn "trainer.max_duration='4ep'"

#!/bin/bash
# GUE mouse/3 (GUE's own train/dev/test: 1904/239/239), 4 epochs, CPU: xLSTM pretrained (128-step dnax sample run)
# vs the same xLSTM from scratch vs the Genomic Benchmarks CNN.
export PYTHONPATH=/work/main OMP_NUM_THREADS=1
PY=/tmp/venvtest/.venv/bin/python
$PY -m dnax.sweep experiments.gue --seeds 1-2 --lrs 6e-4 --pool 2 --name pretrained sample "from_run('/tmp/ft_work/pre')" "trainer.max_duration='4ep'" > pretrained.log 2>&1
$PY -m dnax.sweep experiments.gue --seeds 1-2 --lrs 6e-4 --pool 2 --name scratch sample "trainer.max_duration='4ep'" > scratch.log 2>&1
$PY -m dnax.sweep experiments.gue --seeds 1-3 --lrs 1e-3 --pool 2 --name cnn sample cnn "trainer.max_duration='4ep'" > cnn.log 2>&1

#!/usr/bin/env bash
# The GPU-only checks and benchmarks, in priority order, each under its own time limit, so that a short GPU lease
# still returns the most important numbers. Run from the repository root on a machine with one CUDA GPU:
#
#     bash benchmarks/gpu_checks.sh                 # every stage
#     bash benchmarks/gpu_checks.sh tune tests      # only these stages
#
# Stages, in the order they run (default: all but tune, whose table is committed): tune (kernel launch configurations
# -> kernels/mlstm_bidirectional_tuned.json; run tests after it), tests (the Triton kernels' tests at GPU shapes),
# backbones / backbones32k (every backbone's train step at 1k / 32k, bf16, with the backends 'auto' picks; at 1k also
# Mamba/Caduceus with the PyTorch selective scan), scansplits (the Triton selective scan with and without time
# splits), slstm (the xlstm sLSTM CUDA kernel: JIT
# build + equality with the vanilla backend; then the sLSTM train step with the triton, vanilla and cuda backends),
# anchors (issue 7's xLSTM anchor table; the slow cases last), kernel (native bidirectional cell vs sequence length),
# datastep (RC + MLM masking per batch). Logs go to $GPU_LOG_DIR (default
# benchmarks/results/gpu_logs), results to benchmarks/results/. STAGE_SCALE=2 doubles every time limit;
# AFTER_STAGE, if set, is run (by bash) after each stage, e.g. to copy results off a machine that may be taken back.
set -u
cd "$(dirname "$0")/.."
LOG_DIR=${GPU_LOG_DIR:-benchmarks/results/gpu_logs}
SCALE=${STAGE_SCALE:-1}
PY=${PYTHON:-python3}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1

stage() {  # name, seconds, command...
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local t0=$SECONDS
  echo "== stage $name (limit $limit s)"
  timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "stage $name: exit $rc after $(( SECONDS - t0 )) s (limit $limit s)" | tee -a "$LOG_DIR/summary.txt"
  if [ -n "${AFTER_STAGE:-}" ]; then bash -c "$AFTER_STAGE"; fi
}

STAGES=" ${*:-tests backbones backbones32k scansplits slstm anchors kernel datastep} "
wanted() { [[ "$STAGES" == *" $1 "* ]]; }

{ nvidia-smi -L; $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  $PY -m dnax.backends; } >"$LOG_DIR/environment.txt" 2>&1  # dnax.backends: what each layer's 'auto' runs there
cat "$LOG_DIR/environment.txt"

wanted tune && stage tune 100 $PY -m benchmarks.mlstm_bidirectional_tune
wanted tests && stage tests 180 $PY -m pytest -q -p no:cacheprovider tests/kernels
wanted backbones && stage backbones 200 $PY -m benchmarks.train_step --device cuda --dtype bf16 --batch 32 \
  --length 1024 --steps 3 --timeout 45 --no-reference --mode causal --mode flip_add --mode native_bidirectional \
  --mode mamba --mode caduceus_ph --mode caduceus_ps --mode transformer_pp --mode hyena --mode mamba2
# Mamba and Caduceus with the PyTorch selective scan, for comparison (the rows above use what 'auto' picks:
# mamba_ssm's CUDA scan where it imports, else dnax's Triton scan, as on the lent GPU image)
wanted backbones && stage scan_rows 150 $PY -m benchmarks.train_step --device cuda --dtype bf16 --batch 32 \
  --length 1024 --steps 3 --timeout 45 --no-reference --mode mamba --mode caduceus_ph --mode caduceus_ps \
  --scan-backend torch
wanted backbones32k && stage backbones32k 300 $PY -m benchmarks.train_step --device cuda --dtype bf16 --batch 2 \
  --length 32768 --steps 2 --timeout 60 --no-reference --mode causal --mode native_bidirectional --mode mamba \
  --mode caduceus_ph --mode caduceus_ps --mode transformer_pp --mode hyena --mode flip_add --mode slstm \
  --mode mamba2
# the Triton selective scan in one piece vs split in time (time_splits), Mamba / BiMamba at 2 x 32768 and 32 x 1024
wanted scansplits && stage scansplits 120 $PY -m benchmarks.selective_scan_splits --splits 8 --splits 64
wanted slstm && stage slstm 90 $PY -m pytest -q -x -p no:cacheprovider tests/models/test_slstm.py -k cuda_backend
# the sLSTM model's train step with each sLSTM backend, 32 x 1024 bf16
wanted slstm && stage slstm_rows 200 bash -c 'for b in triton vanilla cuda; do "$0" -m benchmarks.train_step \
  --device cuda --dtype bf16 --batch 32 --length 1024 --steps 3 --timeout 60 --no-reference --mode slstm \
  --s-backend "$b"; done' "$PY"
wanted anchors && stage anchors 900 $PY -m benchmarks.train_step --device cuda --preset anchors --steps 3 --timeout 80
wanted kernel && stage kernel 150 $PY -m benchmarks.mlstm_bidirectional_kernel \
  --lengths 1024 4096 16384 32768 131072 --reps 3
wanted datastep && stage datastep 60 $PY -m benchmarks.data_step --device cuda
exit 0

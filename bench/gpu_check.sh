#!/usr/bin/env bash
# The prepared GPU check (issue 13): run on a GPU host from the repository root, in under
# five minutes. Prints the device, the CUDA vs CPU speed-up of a large minibatched
# logistic regression and of a VAE, and runs one job through the `gpu` queue end to end
# (an embedded store and a `celery worker -Q gpu`). On a machine without CUDA it runs the
# same steps on the CPU at small sizes and says so.
#
#   bash bench/gpu_check.sh            # extra arguments go to bench/bench_gpu.py
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "gpu_check: no nvidia-smi on this machine"
fi
python -c "import torch; print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available(), 'cuda', torch.version.cuda)"

start=$(date +%s)
# 290 s for the benchmark itself keeps the whole check under five minutes.
timeout 290 python bench/bench_gpu.py "$@"
echo "gpu_check: done in $(( $(date +%s) - start )) s"

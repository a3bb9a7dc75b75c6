#!/usr/bin/env bash
# Train on this machine's accelerators (one process sees every local GPU/TPU chip).
#   scripts/launch_local.sh configs/train/tiny-cpu.yaml max_steps=50
#   scripts/launch_local.sh configs/train/semcoder-6.7b.yaml mesh=gpu-1x-h200 data.path=out/pyx
set -euo pipefail
CONFIG=${1:?usage: $0 CONFIG.yaml [key=value ...]}
shift
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}
exec semcoder train --config "$CONFIG" "$@"

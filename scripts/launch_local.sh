#!/usr/bin/env bash
# Train on this machine's accelerators (one process sees every local GPU/TPU chip).
#   scripts/launch_local.sh configs/train/tiny-cpu.yaml max_steps=50
#   scripts/launch_local.sh configs/train/semcoder-6.7b.yaml mesh=gpu-8x-h100 data.path=out/pyx
#   scripts/launch_local.sh configs/train/semcoder-6.7b.yaml mesh=gpu-1x-h200 data.micro_batches=128 data.path=out/pyx
# One GPU holds 4 rows of 6.7B x 2048 beside the fp32 weights and moments, hence micro_batches=128 there.
# DRY_RUN=1 prints the command instead of running it; --help prints this text.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 0
fi
CONFIG=${1:?usage: $0 CONFIG.yaml [key=value ...]}
shift
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}
CMD=(semcoder train --config "$CONFIG" "$@")
if [[ ${DRY_RUN:-0} != 0 ]]; then
  printf '%q' "${CMD[0]}"; printf ' %q' "${CMD[@]:1}"; echo
  exit 0
fi
exec "${CMD[@]}"

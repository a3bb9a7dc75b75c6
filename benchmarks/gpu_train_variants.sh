#!/usr/bin/env bash
# Our 6.7B train step (4 x 2048, packed, cuDNN) in a few variants beside the plain-JAX reference,
# in one device call: bash benchmarks/gpu_train_variants.sh 'NAME;XLA_FLAGS;EXTRA TRAIN_STEP ARGS' ...
# Each part runs in its own process under its own time limit (T_REF, T_VARIANT seconds).
# e.g. 'base;;' 'scanned;;--set model.scan_layers=true' 'dsf;--xla_gpu_enable_dynamic_slice_fusion=true;'
set -u
source "$(dirname "$0")/gpu_env.sh"
part() {  # part NAME SECONDS XLA_FLAGS CMD...
  local name=$1 secs=$2 flags=$3; shift 3
  echo "=== $name ($(date +%T), limit ${secs}s, XLA_FLAGS='$flags'): $*"
  local t0=$SECONDS
  XLA_FLAGS="$flags" timeout -k 5 "$secs" "$@" 2>&1 | grep -v -E "^(I0000|W0000)" | tee "$OUT/$name.log"
  echo "=== $name done in $((SECONDS - t0)) s (rc ${PIPESTATUS[0]})"
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ "${SKIP_REF:-0}" = 1 ] || part ref_jax "${T_REF:-110}" "" python3 .bench/ref_llama_step.py 6.7b:cudnn:dots_with_no_batch_dims_saveable
for spec in "$@"; do
  IFS=';' read -r name flags extra <<<"$spec"
  # shellcheck disable=SC2086
  part "ours_$name" "${T_VARIANT:-150}" "$flags" python3 benchmarks/train_step.py --model deepseek-coder-6.7b \
    --batch 4 --seq 2048 --remat save_dots_no_batch --attention cudnn --packed --steps 5 --warmup-steps 2 $extra
done

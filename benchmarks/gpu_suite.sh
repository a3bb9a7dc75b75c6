#!/usr/bin/env bash
# All GPU checks and timings in one bounded run (for a single lent H200/H100), each part in its own
# process with its own time limit so one failure does not stop the rest. Results go to $OUT (or
# ./gpu_results). Expects the reference scripts in .bench/ (copied from ../shared/bench/) and any
# wheels the image lacks in .whl/.
set -u
if (($#)) && [[ $1 != -* ]]; then  # options (--help, or a refusal) are gpu_env.sh's
  echo "$(basename "$0") takes no arguments, got: $* (--help for usage)" >&2
  exit 2
fi
source "$(dirname "$0")/gpu_env.sh"
part() {  # part NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  echo "=== $name ($(date +%T), limit ${secs}s): $*"
  local t0=$SECONDS
  timeout -k 5 "$secs" "$@" 2>&1 | grep -v -E "^(I0000|W0000)" | tee "$OUT/$name.log"
  echo "=== $name done in $((SECONDS - t0)) s (rc ${PIPESTATUS[0]})"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
part train_ours ${T_OURS:-190} python3 benchmarks/train_step.py --model deepseek-coder-6.7b --batch 4 --seq 2048 \
  --remat ${REMAT:-save_dots_no_batch} --attention cudnn --packed --steps 5 --warmup-steps 2
part train_ref_jax ${T_REF:-115} python3 .bench/ref_llama_step.py 6.7b:cudnn:dots_with_no_batch_dims_saveable
part train_ref_torch ${T_TORCH:-105} python3 .bench/ref_torch_step.py 6.7b:1
part model_gpu ${T_MODEL:-175} python3 benchmarks/model_gpu.py --repeats 1 --timeout 55

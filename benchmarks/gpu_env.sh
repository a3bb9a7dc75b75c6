# Sourced by the GPU scripts: results folder, environment, and the wheels the device image lacks (.whl/).
if [[ ${1:-} == -h || ${1:-} == --help ]]; then  # the sourcing script's usage: its header comment
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 0
fi
if [[ ${1:-} == -* ]]; then  # a mistyped option would otherwise start the GPU runs
  echo "$(basename "$0"): unknown option '$1' (--help for usage)" >&2
  exit 2
fi
OUT=${OUT:-gpu_results}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_MEM_FRACTION=0.94
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
# Compiled programs persist across calls on a machine that is still warm.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$PWD/.device/jax_cache}

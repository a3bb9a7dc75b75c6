#!/usr/bin/env bash
# Train on every worker of a Cloud TPU VM pod slice (e.g. v5p-64: 8 workers of 4 chips, 32 JAX
# devices): one `semcoder train` process per worker; jax.distributed.initialize() finds the
# coordinator itself on TPU VMs.
#   TPU_NAME=my-v5p ZONE=us-east5-a scripts/launch_tpu_pod.sh configs/train/semcoder-6.7b.yaml \
#       mesh=tpu-v5p-64 data.path=/mnt/shared/pyx run_dir=/mnt/shared/runs/sc67
# data.path and run_dir must be paths that every worker mounts (Filestore/NFS, or a bucket through
# gcsfuse): all workers write each checkpoint into one folder, and process 0 alone writes the rest.
# The repository must be checked out (and `pip install -e ".[train,tpu]"` run) at $REPO on every worker
# (default: ~/semcoder-jax, in the worker's home), e.g. once with:
#   gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "..."
# XLA_FLAGS, LIBTPU_INIT_ARGS and the variables named in FORWARD_ENV (space-separated) are passed
# on to the workers when set here. The run stops if this ssh session ends: launch from tmux/screen.
# PROJECT=... adds --project. DRY_RUN=1 prints the gcloud command instead of running it; --help
# prints this text.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 0
fi
CONFIG=${1:?usage: TPU_NAME=... ZONE=... $0 CONFIG.yaml [key=value ...]}
shift
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO=${REPO:-'~/semcoder-jax'}
ENV_EXPORTS=""
for name in XLA_FLAGS LIBTPU_INIT_ARGS ${FORWARD_ENV:-}; do
  if [[ -n ${!name+set} ]]; then ENV_EXPORTS+="export $name=$(printf %q "${!name}"); "; fi
done
ARGS=""
if (($#)); then ARGS=$(printf ' %q' "$@"); fi
# A non-interactive ssh shell leaves ~/.local/bin (where a user's `pip install` puts `semcoder`) off PATH.
REMOTE="set -o pipefail; export PATH=\"\$HOME/.local/bin:\$PATH\"; ${ENV_EXPORTS}cd $REPO && \
semcoder train --config $(printf %q "$CONFIG")$ARGS 2>&1 | tee -a train-worker-\$(hostname).log"
CMD=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE")
if [[ -n ${PROJECT:-} ]]; then CMD+=(--project "$PROJECT"); fi
CMD+=(--worker=all --command "$REMOTE")
if [[ ${DRY_RUN:-0} != 0 ]]; then
  printf '%q' "${CMD[0]}"; printf ' %q' "${CMD[@]:1}"; echo
  exit 0
fi
"${CMD[@]}"

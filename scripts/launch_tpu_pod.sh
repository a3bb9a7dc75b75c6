#!/usr/bin/env bash
# Train on every worker of a Cloud TPU VM pod slice (e.g. v5p-64): one `semcoder train` process
# per worker; jax.distributed.initialize() finds the coordinator itself on TPU VMs.
#   TPU_NAME=my-v5p ZONE=us-east5-a scripts/launch_tpu_pod.sh configs/train/semcoder-6.7b.yaml \
#       mesh=tpu-v5p-64 model.attention=splash data.path=/mnt/shared/pyx run_dir=/mnt/shared/runs/sc67
# data.path and run_dir must be paths that every worker mounts (Filestore/NFS, or a bucket through
# gcsfuse): all workers write each checkpoint into one folder, and process 0 alone writes the rest.
# The repository must be checked out (and `pip install -e .[train,tpu]` run) at $REPO on every worker
# (default: ~/semcoder-jax, in the worker's home), e.g. once with:
#   gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "..."
set -euo pipefail
CONFIG=${1:?usage: TPU_NAME=... ZONE=... $0 CONFIG.yaml [key=value ...]}
shift
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO=${REPO:-'~/semcoder-jax'}
PROJECT_FLAG=${PROJECT:+--project "$PROJECT"}
ARGS=""
if (($#)); then ARGS=$(printf ' %q' "$@"); fi
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" $PROJECT_FLAG --worker=all \
  --command "set -o pipefail; cd $REPO && semcoder train --config $(printf %q "$CONFIG")$ARGS 2>&1 | tee -a train-worker-\$(hostname).log"

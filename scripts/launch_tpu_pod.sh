#!/usr/bin/env bash
# Train on every worker of a Cloud TPU VM pod slice (e.g. v5p-64): one `semcoder train` process
# per worker; jax.distributed.initialize() finds the coordinator itself on TPU VMs.
#   TPU_NAME=my-v5p ZONE=us-east5-a scripts/launch_tpu_pod.sh configs/train/semcoder-6.7b.yaml \
#       mesh=tpu-v5p-64 model.attention=splash data.path=gs://bucket/pyx run_dir=gs://bucket/runs/sc67
# The repository must be checked out (and `pip install -e .[train,tpu]` run) at $REPO on every worker,
# e.g. once with: gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "..."
set -euo pipefail
CONFIG=${1:?usage: TPU_NAME=... ZONE=... $0 CONFIG.yaml [key=value ...]}
shift
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO=${REPO:-~/semcoder-jax}
PROJECT_FLAG=${PROJECT:+--project "$PROJECT"}
ARGS=$(printf ' %q' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" $PROJECT_FLAG --worker=all \
  --command "cd $REPO && semcoder train --config $(printf %q "$CONFIG")$ARGS 2>&1 | tee -a train-worker-\$(hostname).log"

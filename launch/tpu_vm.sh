#!/usr/bin/env bash
# A Cloud TPU VM (a single host or a pod slice): create it, install dlx on every worker, train
# on all workers at once (one JAX process per host, joined by `train.distributed=auto`), delete.
#
#   launch/tpu_vm.sh create | setup | train [--config.KEY=VALUE...] | delete
#
# Env (the first four have defaults):
#   ZONE              e.g. us-central2-b (default)
#   ACCELERATOR_TYPE  e.g. v4-32 (default: v4-8, one host)
#   RUNTIME_VERSION   the TPU VM image (default: tpu-ubuntu2204-base)
#   PROJECT           Google Cloud project (default: gcloud's configured project)
#   TPU_NAME          the TPU VM's name (required)
#   REPO_URL          git URL of dlx, cloned on every worker by `setup` (required for setup)
#   CONFIG            experiment name or experiments/NAME.py (required for train)
#   WORKDIR           run directory every worker can reach: a shared mount (NFS/Filestore, or a
#                     bucket mounted with gcsfuse); gs:// URLs are not paths dlx can write
#                     (required for train; each host writes its checkpoint shards there)
# Rerun `train` to resume from the last checkpoint in WORKDIR.
set -euo pipefail

usage() {
  echo "usage: $0 create|setup|train [--config.KEY=VALUE...]|delete" >&2
  echo "  env: TPU_NAME, ZONE, ACCELERATOR_TYPE, RUNTIME_VERSION, PROJECT, REPO_URL, CONFIG," \
    "WORKDIR (see the top of $0)" >&2
  exit 2
}

require() {
  local name
  for name in "$@"; do
    if [[ -z ${!name:-} ]]; then
      echo "$0: $name is not set; expected it in the environment (see the top of $0)" >&2
      exit 2
    fi
  done
}

[[ $# -ge 1 ]] || usage
command=$1
shift

ZONE=${ZONE:-us-central2-b}
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-v4-8}
RUNTIME_VERSION=${RUNTIME_VERSION:-tpu-ubuntu2204-base}
PROJECT=${PROJECT:-}
project_flag=()
if [[ -n $PROJECT ]]; then
  project_flag=(--project "$PROJECT")
fi

tpu() {
  gcloud compute tpus tpu-vm "$@" --zone "$ZONE" "${project_flag[@]}"
}

on_all_workers() {
  tpu ssh "$TPU_NAME" --worker=all --command "$1"
}

case $command in
  create)
    [[ $# -eq 0 ]] || usage
    require TPU_NAME
    tpu create "$TPU_NAME" --accelerator-type "$ACCELERATOR_TYPE" --version "$RUNTIME_VERSION"
    ;;
  setup)
    [[ $# -eq 0 ]] || usage
    require TPU_NAME REPO_URL
    on_all_workers "set -e
      if [ -d dlx ]; then git -C dlx pull --ff-only; else git clone $(printf %q "$REPO_URL") dlx; fi
      python3 -m venv dlx/.venv
      dlx/.venv/bin/pip install --quiet --upgrade pip
      dlx/.venv/bin/pip install --quiet -e dlx 'jax[tpu]'"
    ;;
  train)
    require TPU_NAME CONFIG WORKDIR
    overrides=""
    if [[ $# -gt 0 ]]; then
      overrides=$(printf ' %q' "$@")
    fi
    on_all_workers "cd dlx && .venv/bin/dlx train --config $(printf %q "$CONFIG") \
      --workdir $(printf %q "$WORKDIR") --config.train.distributed=auto$overrides"
    ;;
  delete)
    [[ $# -eq 0 ]] || usage
    require TPU_NAME
    tpu delete "$TPU_NAME" --quiet
    ;;
  *)
    usage
    ;;
esac

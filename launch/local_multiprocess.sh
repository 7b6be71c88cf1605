#!/usr/bin/env bash
# N processes on this machine joined into one JAX run through a 127.0.0.1 coordinator: the local
# stand-in for a TPU pod or a GPU cluster (and what the tests launch).
#
#   launch/local_multiprocess.sh N [--cpu-devices D] -- COMMAND...
#
#   launch/local_multiprocess.sh 2 --cpu-devices 4 -- dlx train --config mnist1d_mlp \
#       --workdir runs/mnist1d_mp --config.train.distributed=auto
#
# Each process gets DLX_COORDINATOR_ADDRESS, DLX_NUM_PROCESSES and DLX_PROCESS_ID (read by
# `train.distributed=auto`); --cpu-devices D runs it on D emulated CPU devices. When one process
# fails, the others get SIGTERM and, DLX_LAUNCH_GRACE_S seconds later (default 30), SIGKILL; the
# launcher exits with the first failure's code. Rerun the same command to resume from the last
# checkpoint.
#
# Env: DLX_LAUNCH_PORT (coordinator port; default: a free one), DLX_LAUNCH_GRACE_S.
set -euo pipefail

usage() {
  echo "usage: $0 N [--cpu-devices D] -- COMMAND..." >&2
  exit 2
}

[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
processes=$1
shift
cpu_devices=""
while [[ $# -gt 0 && $1 != "--" ]]; do
  case $1 in
    --cpu-devices)
      [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage
      cpu_devices=$2
      shift 2
      ;;
    *) usage ;;
  esac
done
[[ $# -ge 2 ]] || usage
shift  # the "--"

port=${DLX_LAUNCH_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
grace=${DLX_LAUNCH_GRACE_S:-30}
if [[ -n $cpu_devices ]]; then
  export JAX_PLATFORMS=cpu
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$cpu_devices"
fi

declare -A running=()
for ((id = 0; id < processes; id++)); do
  DLX_COORDINATOR_ADDRESS="127.0.0.1:$port" DLX_NUM_PROCESSES=$processes DLX_PROCESS_ID=$id \
    "$@" &
  running[$!]=$id
  echo "local_multiprocess: process $id is pid $!" >&2
done

timer=""
stop_others() {
  kill -TERM "${!running[@]}" 2>/dev/null || true
  (sleep "$grace" && kill -KILL "${!running[@]}" 2>/dev/null) &
  timer=$!
}

status=0
while [[ ${#running[@]} -gt 0 ]]; do
  code=0
  wait -n -p finished "${!running[@]}" || code=$?
  id=${running[$finished]}
  unset "running[$finished]"
  if [[ $code -ne 0 && $status -eq 0 ]]; then
    status=$code
    echo "local_multiprocess: process $id (pid $finished) exited with code $code; stopping" \
      "the others" >&2
    if [[ ${#running[@]} -gt 0 ]]; then
      stop_others
    fi
  fi
done
if [[ -n $timer ]]; then
  kill "$timer" 2>/dev/null || true
fi
exit "$status"

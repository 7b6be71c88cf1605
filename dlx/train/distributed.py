"""Multi-process runs: `jax.distributed` start-up, the primary process, and host copies of arrays.

`train.distributed="auto"` joins a multi-process run before any device is touched. The
coordinator comes from `DLX_COORDINATOR_ADDRESS` / `DLX_NUM_PROCESSES` / `DLX_PROCESS_ID` when
set (`launch/local_multiprocess.sh` sets them), else from JAX's own cluster detection (TPU VM
pod slices, SLURM, Open MPI, ...). Every process builds the same global batch from the same seed
and places only the rows of its own devices; process 0 alone writes logs, plots and summaries,
while all processes take part in every step, evaluation and Orbax save.
"""

from __future__ import annotations

import os
from typing import Any

import jax

from dlx.errors import DlxError

MODES = ("off", "auto")
ENV_ADDRESS, ENV_PROCESSES, ENV_PROCESS_ID = ("DLX_COORDINATOR_ADDRESS", "DLX_NUM_PROCESSES",
                                              "DLX_PROCESS_ID")
INIT_TIMEOUT_S = 300


def initialize(mode: str) -> None:
    """Joins the multi-process run for `train.distributed=auto`; nothing for `off`."""
    if mode not in MODES:
        raise DlxError(f"train.distributed={mode!r} is not known; expected one of: "
                       f"{', '.join(MODES)}")
    if mode == "off" or jax.distributed.is_initialized():
        return
    # CPU devices of different processes talk through gloo (GPUs and TPUs have their own links).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    explicit = {}
    if ENV_ADDRESS in os.environ:
        try:
            explicit = {"coordinator_address": os.environ[ENV_ADDRESS],
                        "num_processes": int(os.environ[ENV_PROCESSES]),
                        "process_id": int(os.environ[ENV_PROCESS_ID])}
        except (KeyError, ValueError):
            raise DlxError(f"{ENV_ADDRESS} is set, so {ENV_PROCESSES} and {ENV_PROCESS_ID} must be "
                           f"integers too (got {os.environ.get(ENV_PROCESSES)!r} and "
                           f"{os.environ.get(ENV_PROCESS_ID)!r})") from None
    try:
        jax.distributed.initialize(**explicit, initialization_timeout=INIT_TIMEOUT_S)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DlxError(f"train.distributed=auto could not join the run ({first}); set "
                       f"{ENV_ADDRESS}/{ENV_PROCESSES}/{ENV_PROCESS_ID} or run on a cluster JAX "
                       f"detects") from None


def is_primary() -> bool:
    """True in process 0 (and in any single-process run): the one that writes files."""
    return jax.process_index() == 0


def host_copy(tree: Any) -> Any:
    """`tree` as NumPy arrays on every process, whatever its sharding (a collective: every
    process must call it)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)

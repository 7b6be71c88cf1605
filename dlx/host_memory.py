"""Host memory freed by one train step kept for the next (glibc only; opt-in).

XLA:CPU mallocs a step's temporaries (activations, logits, gradients) and frees them when the
step ends. glibc hands a block over its mmap threshold (adaptive, at most 32 MiB), and most of
what worker threads free from their own arenas, straight back to the kernel, so the next step
page-faults all of it in again: a BERT MLM step (H256, 4 layers, batch 32 x 128) took ~205,000
minor page faults (~800 MB) and 1.09 s on 2 CPU cores, against 0.91 s without them.
`keep_freed_memory` serves every block under 1 GiB from one arena that is never trimmed: freed
memory stays with the process, whose resident size then stays at its peak, and is reused
without faults. One arena also serialises the allocations of XLA's multi-threaded compiler
(compiles took 15-30 % longer), so a small model's run, mostly compilation, got slower (the
default `mnist1d_mlp` run: 9.8 -> 10.5-11.5 s). Hence opt-in: `DLX_KEEP_FREED_MEMORY=1` makes
the command line call it at start-up; a notebook calls it itself, before JAX starts. Where
transparent huge pages are on (`madvise` or `always`), GLIBC_TUNABLES=glibc.malloc.hugetlb=1 in
the environment of a new process removes most of the faults without that cost (2 MiB pages).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Mapping

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, (1 << 31) - 1))
_ON = ("1", "on", "true", "yes")


def keep_freed_memory() -> bool:
    """Sets `SETTINGS` with glibc's mallopt; True when all took effect, False when the C library
    is not glibc (nothing is changed then). Call it before JAX starts its threads: a thread that
    already has an arena of its own keeps it."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: other allocators
        return False
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in SETTINGS)


def from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """`keep_freed_memory()` when DLX_KEEP_FREED_MEMORY is 1 (on, true, yes); else False."""
    if environ.get("DLX_KEEP_FREED_MEMORY", "").strip().lower() not in _ON:
        return False
    return keep_freed_memory()

"""Train and eval steps jitted on CPU with their temporaries in heaps of at most 16 MiB.

XLA:CPU packs a step's temporaries (activations, logits, gradients) into one block that it mallocs
at every call and frees at the end: 658 MB for a BERT MLM step (H256, 4 layers, batch 32 x 128).
glibc maps a block over its mmap threshold (adaptive, at most 32 MiB) afresh and unmaps it on free,
so every page faults in again at every step (~180,000 minor faults). XLA's
`xla_multiheap_size_constraint_per_heap`, given to these programs alone as a compile option, splits
the block into heaps of at most `HEAP_LIMIT_BYTES`; glibc then serves them from its thread arenas,
which keep part of what is freed mapped for the next step. How much depends on the allocation
pattern: in that BERT step the faults fell to ~90,000 a step (~65,000 of them three 78 MB
logit-sized buffers and the 31 MB table gradient, over the limit and mapped alone) and the step
took ~10 % less time; in a 24-layer MLP's donated SGD step (~50 MB of 2 MiB activations) they fell
by 4 % only. Same program, same numbers; the temporaries take more room (658 -> 762 MB there), as
buffers no longer share space across heaps. A program of one heap (temporaries under 16 MiB) is
unchanged.

Two side effects are handled here. XLA logs a warning for each buffer over the limit at every
heap it packs, and JAX cannot write a program of several heaps to its persistent compilation
cache (XLA:CPU serialises one temporaries block only), so such a step compiles in every run and
JAX warns about it: `jit` silences both (XLA's C++ errors still show) while it calls the step.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Sequence

import jax

HEAP_LIMIT_BYTES = 16 << 20
_UNCACHEABLE = "Error writing persistent compilation cache entry .*Multiple temp buffer"
_LOG_LEVELS = {"DEBUG": 0, "INFO": 0, "WARNING": 1, "WARN": 1, "ERROR": 2, "CRITICAL": 3,
               "FATAL": 3}
_ERRORS_ONLY = 2


def compiler_options(devices: Sequence[jax.Device]) -> dict[str, int] | None:
    """The heap limit as XLA compile options when every device is a CPU; else None."""
    if devices and all(device.platform == "cpu" for device in devices):
        return {"xla_multiheap_size_constraint_per_heap": HEAP_LIMIT_BYTES}
    return None


def jit(fun: Callable[..., Any], devices: Sequence[jax.Device],
        **jit_kwargs: Any) -> Callable[..., Any]:
    """`jax.jit(fun, **jit_kwargs)` with `compiler_options(devices)`; on CPU, called with XLA's
    C++ warnings and JAX's warning that the program cannot be cached off."""
    options = compiler_options(devices)
    jitted = jax.jit(fun, compiler_options=options, **jit_kwargs)
    if options is None:
        return jitted
    set_level = _absl_set_min_log_level()

    def call(*args: Any, **kwargs: Any) -> Any:
        if set_level is not None:
            set_level(_ERRORS_ONLY)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", _UNCACHEABLE, UserWarning)
                return jitted(*args, **kwargs)
        finally:
            if set_level is not None:
                set_level(_cpp_log_level())

    return call


def _absl_set_min_log_level() -> Callable[[int], None] | None:
    """jaxlib's setter of the C++ log threshold, or None where this jaxlib has none."""
    try:
        from jax._src.lib import utils
    except ImportError:
        return None
    return getattr(utils, "absl_set_min_log_level", None)


def _cpp_log_level() -> int:
    """The C++ log threshold JAX set: from `jax_logging_level`, else TF_CPP_MIN_LOG_LEVEL (JAX
    makes it 1, warnings and up, when unset)."""
    level = getattr(jax.config, "jax_logging_level", None)
    if level and level != "NOTSET":
        return _LOG_LEVELS[level]
    setting = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1")
    return int(setting) if setting.isdigit() else 1

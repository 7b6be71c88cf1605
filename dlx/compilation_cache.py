"""The command line's persistent XLA compilation cache: compiled programs kept on disk, so a rerun,
a resumed run, or `dlx eval` / `explain` / `generate` on a trained model loads them instead of
compiling again (a 20-step `mnist1d_lstm` run on 2 CPU cores: 6.0 s without, 3.1 s with a warm
cache). Results are unchanged: a cached program is the program compiled before.

On by default in `jax-cache/` under `$DLX_DATA_DIR` (else `~/.cache/dlx`), at most `MAX_BYTES`
(least recently used entries go first). `DLX_COMPILATION_CACHE=0` turns it off and a path puts it
there; a `JAX_COMPILATION_CACHE_DIR` of one's own is left in charge. Library use (a notebook)
keeps JAX's defaults.
"""

from __future__ import annotations

import os
import pathlib
from typing import Mapping

MAX_BYTES = 1 << 30
_OFF = ("0", "off", "false", "no")


def directory(environ: Mapping[str, str]) -> pathlib.Path | None:
    """Where the cache goes under `environ`, or None when it is off or JAX's own setting rules."""
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    setting = environ.get("DLX_COMPILATION_CACHE", "").strip()
    if setting.lower() in _OFF:
        return None
    if setting and setting != "1":
        return pathlib.Path(setting).expanduser()
    from dlx import data
    return data.cache_root(environ) / "jax-cache"


def enable(environ: Mapping[str, str] = os.environ) -> pathlib.Path | None:
    """Points JAX's persistent cache at `directory(environ)` for every compile from now on, small
    ones included (most of a short run's compiles are ~10-100 ms each); returns the directory, or
    None when off or not creatable (the cache only saves time, so it never stops a run)."""
    path = directory(environ)
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path

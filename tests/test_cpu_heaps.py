"""cpu_heaps: a step jitted with its temporaries in small heaps computes the same numbers as a
plain jit, and compiles without XLA's per-buffer warnings, which a plain jit with the same option
prints (in a fresh process: the C++ log level is process-wide)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import types

import chex
import jax
import jax.numpy as jnp

from dlx.train import cpu_heaps

# A 3-layer tanh MLP's gradient keeps 20 MiB activations, over the 16 MiB limit: XLA warns about
# each while it packs the heaps, and JAX that it cannot cache a program of several heaps.
WARNING_SCRIPT = """
import sys
import jax, jax.numpy as jnp
from dlx.train import cpu_heaps

def loss(w_KK, x_NK):
    for _ in range(3):
        x_NK = jnp.tanh(x_NK @ w_KK)
    return jnp.sum(x_NK)

w_KK, x_NK = jnp.full((128, 128), 1e-3), jnp.ones((40960, 128))
print(float(cpu_heaps.jit(jax.grad(loss), jax.devices())(w_KK, x_NK)[0, 0]))
print("plain jit:", file=sys.stderr, flush=True)
options = cpu_heaps.compiler_options(jax.devices())
print(float(jax.jit(jax.grad(loss), compiler_options=options)(w_KK, x_NK)[0, 0]))
"""


def run(script: str, cache: pathlib.Path) -> subprocess.CompletedProcess:
    """`script` in a new Python process on the CPU backend, every program cached in `cache`."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env=env)


def test_a_train_step_gives_the_same_numbers_as_a_plain_jit():
    def loss(weights, x_NK):
        for w_KK in weights:
            x_NK = jnp.tanh(x_NK @ w_KK)
        return jnp.sum(x_NK ** 2)

    def sgd_step(weights, x_NK):
        value, grads = jax.value_and_grad(loss)(weights, x_NK)
        return jax.tree.map(lambda w, g: w - 1e-3 * g, weights, grads), value

    keys = jax.random.split(jax.random.key(0), 9)
    x_NK = jax.random.normal(keys[0], (16384, 128))  # 8 MiB activations: several heaps.
    results = []
    for step in (jax.jit(sgd_step, donate_argnums=0),
                 cpu_heaps.jit(sgd_step, jax.devices(), donate_argnums=0)):
        weights = tuple(jax.random.normal(k, (128, 128)) / 11 for k in keys[1:])
        losses = []
        for _ in range(3):
            weights, value = step(weights, x_NK)
            losses.append(value)
        results.append((weights, losses))
    chex.assert_trees_all_equal(*results)


def test_the_compile_warnings_are_silenced_and_the_log_level_restored(tmp_path):
    result = run(WARNING_SCRIPT, tmp_path)
    split_log, plain_log = result.stderr.split("plain jit:")
    for warning in ("larger than the per-heap size limit", "Multiple temp buffer allocations"):
        assert warning not in split_log and warning in plain_log
    split_value, plain_value = map(float, result.stdout.split())
    assert split_value == plain_value


def test_options_only_for_cpu_devices():
    assert cpu_heaps.compiler_options(jax.devices("cpu")) == {
        "xla_multiheap_size_constraint_per_heap": cpu_heaps.HEAP_LIMIT_BYTES}
    gpu = types.SimpleNamespace(platform="gpu")
    assert cpu_heaps.compiler_options([gpu]) is None
    assert cpu_heaps.compiler_options([]) is None

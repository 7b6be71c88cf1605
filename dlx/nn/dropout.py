"""Dropout whose masks come from a counter-based integer hash instead of `jax.random` bits.

Element i of a mask keeps its value when `h(h(i + s0) ^ s1) >= round(rate * 2^32)`, where `h` is
Wellons' `lowbias32` (xorshift-multiply, bias 0.17 on his avalanche test) and (s0, s1) are two
uint32 words drawn once per call from the JAX key. The key still decides everything (same key,
same mask; a resumed run drops the same units), but the per-element work is a few integer ops
XLA vectorises: on CPU 17.8M mask bits take ~3.5 ms instead of ~400 ms with threefry (~300 ms
with rbg), which was a third of a BERT train step. The two seeds enter on either side of the
first hash, so masks of two calls are not shifted copies of one stream. The kept fraction is
`1 - rate` up to 2^-32. Arrays of 2^32 or more elements are refused (the counter is 32-bit).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError


def _lowbias32(x: jax.Array) -> jax.Array:
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hash_bits(key: jax.Array, shape: Sequence[int]) -> jax.Array:
    """Uniform uint32 words of `shape`, a pure function of `key` (see the module docstring)."""
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2 ** 32:
        raise DlxError(f"dropout over {size} elements exceeds the 2^32 the mask counter covers; "
                       f"expected a smaller array")
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    return _lowbias32(_lowbias32(index + seeds[0]) ^ seeds[1])


def keep_mask(key: jax.Array, rate: float, shape: Sequence[int]) -> jax.Array:
    """Bool mask of `shape`, each element True with probability `1 - rate` (to 2^-32)."""
    if not 0.0 <= rate < 1.0:
        raise DlxError(f"dropout rate={rate} is invalid; expected 0 <= rate < 1")
    threshold = min(round(rate * 2 ** 32), 2 ** 32 - 1)
    return hash_bits(key, shape) >= jnp.uint32(threshold)


def dropout(key: jax.Array, rate: float, x: jax.Array) -> jax.Array:
    """Inverted dropout: `x / (1 - rate)` where kept, 0 elsewhere (`x` itself when rate is 0)."""
    if rate == 0.0:
        return x
    return apply_keep_mask(keep_mask(key, rate, x.shape), rate, x)


def apply_keep_mask(keep: jax.Array, rate: float, x: jax.Array) -> jax.Array:
    """`x / (1 - rate)` where `keep` (broadcastable to x), 0 elsewhere."""
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


class Dropout(nn.Module):
    """`nn.Dropout` with `keep_mask`'s masks: drops with `rate` unless `deterministic`, keyed by
    the `dropout` rng collection."""
    rate: float
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool | None = None) -> jax.Array:
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if deterministic or self.rate == 0.0:
            return x
        return dropout(self.make_rng("dropout"), self.rate, x)

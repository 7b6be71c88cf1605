"""Flax-style initialisers `(key, shape, dtype) -> array_shape` with He, Xavier and LeCun scales.

He: std = sqrt(2/fan_in); Xavier/Glorot: sqrt(2/(fan_in+fan_out)); LeCun: sqrt(1/fan_in),
which the project's notes call "Xavier"; here that name means Glorot's fan-averaged form. Normal
variants are untruncated so the std is exact; uniform ones use U(-b, b) with b = std*sqrt(3).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from dlx.errors import DlxError

Initializer = Callable[..., jax.Array]


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel `(*spatial, in, out)`, scaled by the receptive field size."""
    if len(shape) < 2:
        raise DlxError(f"fan-based initialisers need a kernel of at least 2 dims; "
                       f"got shape {tuple(shape)}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """All zeros of `shape`."""
    del key
    return jnp.zeros(shape, dtype)


def constant(value: float) -> Initializer:
    """An initialiser filling `shape` with `value`."""
    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        del key
        return jnp.full(shape, value, dtype)
    return init


# The random draws below are flat, then reshaped: called eagerly, each kernel rank would otherwise
# compile its own sampler (seconds on a small CPU); a flat draw compiles once per size.
def normal(stddev: float) -> Initializer:
    """An initialiser drawing `shape` from N(0, stddev^2)."""
    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        draw = jax.random.normal(key, (math.prod(shape),), dtype)
        return (jnp.asarray(stddev, dtype) * draw).reshape(shape)
    return init


def uniform(scale: float) -> Initializer:
    """An initialiser drawing `shape` from U(-scale, scale)."""
    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        draw = jax.random.uniform(key, (math.prod(shape),), dtype, minval=-scale, maxval=scale)
        return draw.reshape(shape)
    return init


def _fan_scaled(std_of_fans: Callable[[int, int], float], draw: Callable[[float], Initializer],
                name: str) -> Initializer:
    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return draw(std_of_fans(*fans(shape)))(key, shape, dtype)
    init.__name__ = init.__qualname__ = name
    return init


def _he_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / fan_in)


def _xavier_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


def _lecun_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(1.0 / fan_in)


def _uniform_same_variance(std: float) -> Initializer:
    return uniform(std * math.sqrt(3.0))


he_normal = _fan_scaled(_he_std, normal, "he_normal")
he_uniform = _fan_scaled(_he_std, _uniform_same_variance, "he_uniform")
xavier_normal = _fan_scaled(_xavier_std, normal, "xavier_normal")
xavier_uniform = _fan_scaled(_xavier_std, _uniform_same_variance, "xavier_uniform")
lecun_normal = _fan_scaled(_lecun_std, normal, "lecun_normal")

_NAMED = {"zeros": zeros, "he_normal": he_normal, "he_uniform": he_uniform,
          "xavier_normal": xavier_normal, "xavier_uniform": xavier_uniform,
          "lecun_normal": lecun_normal}
_WITH_ARGUMENT = {"constant": constant, "normal": normal, "uniform": uniform}


def get(spec: str) -> Initializer:
    """An initialiser from a config string: a name (`he_normal`), or `name:value` for `constant`,
    `normal` (stddev) and `uniform` (scale), e.g. `normal:0.01`."""
    name, _, argument = spec.partition(":")
    known = ", ".join([*_NAMED, *(f"{n}:VALUE" for n in _WITH_ARGUMENT)])
    if name in _NAMED and not argument:
        return _NAMED[name]
    if name in _WITH_ARGUMENT and argument:
        try:
            return _WITH_ARGUMENT[name](float(argument))
        except ValueError:
            pass
    raise DlxError(f"initialiser {spec!r} is not known; expected one of: {known}")

"""Hand-written elementwise activations, their derivatives, and lookup by name for configs."""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from dlx.errors import DlxError

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def linear(x: jax.Array) -> jax.Array:
    """Identity: `x_...` -> `x_...`."""
    return x


def step(x: jax.Array) -> jax.Array:
    """Heaviside step `x_...` -> `y_...`: 1 where x > 0, else 0 (so step(0) = 0)."""
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


def sigmoid(x: jax.Array) -> jax.Array:
    """Logistic 1/(1+exp(-x)) `x_...` -> `y_...`, stable for any |x|."""
    # exp(-|x|) <= 1, so neither branch (nor its gradient) can overflow.
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent `x_...` -> `y_...`."""
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """max(x, 0) `x_...` -> `y_...`; its gradient at 0 is 0."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """x where x >= 0 else negative_slope * x: `x_...` -> `y_...`."""
    return jnp.where(x >= 0, x, negative_slope * x)


def _gelu_tanh_arg(x: jax.Array) -> jax.Array:
    return _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)


def gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
    """x * Phi(x) `x_...` -> `y_...`; `approximate` uses the tanh form."""
    if approximate:
        # 0.5 * (1 + tanh(u)) == sigmoid(2u), which avoids cancellation where tanh(u) -> -1.
        return x * sigmoid(2 * _gelu_tanh_arg(x))
    return 0.5 * x * (1 + erf(x / math.sqrt(2.0)))


def silu(x: jax.Array) -> jax.Array:
    """x * sigmoid(x) (swish) `x_...` -> `y_...`."""
    return x * sigmoid(x)


def _d_linear(x: jax.Array) -> jax.Array:
    return jnp.ones_like(x)


def _d_step(x: jax.Array) -> jax.Array:
    # Zero almost everywhere; the Dirac delta at 0 is not representable.
    return jnp.zeros_like(x)


def _d_sigmoid(x: jax.Array) -> jax.Array:
    s = sigmoid(x)
    return s * (1 - s)


def _d_tanh(x: jax.Array) -> jax.Array:
    t = jnp.tanh(x)
    return 1 - t**2


def _d_relu(x: jax.Array) -> jax.Array:
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


def _d_leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.full_like(x, negative_slope))


def _d_gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
    if approximate:
        # d/dx of 0.5x(1 + tanh u) with 0.5(1 + tanh u) = sigmoid(2u), 1 - tanh^2 u = 4 s(2u) s(-2u).
        u = _gelu_tanh_arg(x)
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x**2)
        return sigmoid(2 * u) + 2 * x * sigmoid(2 * u) * sigmoid(-2 * u) * du
    cdf = 0.5 * (1 + erf(x / math.sqrt(2.0)))
    pdf = jnp.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def _d_silu(x: jax.Array) -> jax.Array:
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


ACTIVATIONS: dict[str, Callable[..., jax.Array]] = {
    "linear": linear,
    "step": step,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "gelu": gelu,
    "silu": silu,
}

_DERIVATIVES: dict[str, Callable[..., jax.Array]] = {
    "linear": _d_linear,
    "step": _d_step,
    "sigmoid": _d_sigmoid,
    "tanh": _d_tanh,
    "relu": _d_relu,
    "leaky_relu": _d_leaky_relu,
    "gelu": _d_gelu,
    "silu": _d_silu,
}


def _unknown(name: str) -> DlxError:
    return DlxError(f"unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}")


def get(name: str) -> Callable[..., jax.Array]:
    """The activation called `name`; a one-line error lists the known names."""
    if name not in ACTIVATIONS:
        raise _unknown(name)
    return ACTIVATIONS[name]


def derivative(name: str) -> Callable[..., jax.Array]:
    """The elementwise derivative `x_...` -> `dy/dx_...` of `name`, taking the same keywords."""
    if name not in _DERIVATIVES:
        raise _unknown(name)
    return _DERIVATIVES[name]

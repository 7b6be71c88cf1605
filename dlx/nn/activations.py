"""Activation functions by name, for configs."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlx.errors import DlxError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}


def get(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation called `name`; a one-line error lists the known names."""
    if name not in ACTIVATIONS:
        raise DlxError(f"unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]

"""Losses; computed in float32 and reduced over real examples only."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy_sum(logits_BC: jax.Array, labels_B: jax.Array,
                      where_B: jax.Array | None = None) -> jax.Array:
    """Sum over real rows of -log softmax(logits)[label]; divide by the global count of real rows."""
    logp_BC = jax.nn.log_softmax(logits_BC.astype(jnp.float32))
    nll_B = -jnp.take_along_axis(logp_BC, labels_B[:, None], axis=-1)[:, 0]
    if where_B is not None:
        nll_B = jnp.where(where_B, nll_B, 0.0)
    return nll_B.sum()


def cross_entropy(logits_BC: jax.Array, labels_B: jax.Array,
                  where_B: jax.Array | None = None) -> jax.Array:
    """Mean softmax cross-entropy over the real rows (all rows when `where_B` is None)."""
    count = labels_B.size if where_B is None else jnp.maximum(where_B.sum(), 1)
    return cross_entropy_sum(logits_BC, labels_B, where_B) / count

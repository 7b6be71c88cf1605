"""The tied output layer of a language model: `logits = h · tableᵀ + bias`, with its own backward.

BERT's MLM decoder and GPT's output layer reuse the token embedding table `(V, H)`. Differentiated
by JAX, the bias gradient is a column sum of the `(N, V)` logit gradient, which XLA's CPU backend
runs several times slower than a matrix product, and the table's gradient transposes that
`(N, V)` array first. The backward pass here writes the three gradients as matrix products
instead: `dh = d · table`, `dtable = dᵀ · h`, `dbias = 1ᵀ · d`; values are equal up to float
rounding (tests check them against `jax.grad` of the plain expression).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def tied_logits(h_XH: jax.Array, table_VH: jax.Array, bias_V: jax.Array | None = None,
                dtype: jnp.dtype = jnp.float32) -> jax.Array:
    """float32 logits `(..., V)` = `h_XH · table_VHᵀ (+ bias_V)`, the product in `dtype`."""
    return _tied_logits(jnp.dtype(dtype), h_XH, table_VH, bias_V)


def _product(dtype: jnp.dtype, h_XH: jax.Array, table_VH: jax.Array,
             bias_V: jax.Array | None) -> jax.Array:
    logits_XV = jnp.einsum("...h,vh->...v", h_XH.astype(dtype), table_VH.astype(dtype),
                           preferred_element_type=jnp.float32)
    if bias_V is None:
        return logits_XV
    return logits_XV + bias_V.astype(jnp.float32).reshape((1,) * (logits_XV.ndim - 1) + (-1,))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _tied_logits(dtype, h_XH, table_VH, bias_V):
    return _product(dtype, h_XH, table_VH, bias_V)


def _forward(dtype, h_XH, table_VH, bias_V):
    return _product(dtype, h_XH, table_VH, bias_V), (h_XH, table_VH, bias_V)


def _backward(dtype, residuals, d_XV):
    h_XH, table_VH, bias_V = residuals
    h_NH = h_XH.reshape(-1, h_XH.shape[-1]).astype(dtype)
    d_NV = d_XV.reshape(-1, d_XV.shape[-1])
    d_h_NH = jnp.dot(d_NV.astype(dtype), table_VH.astype(dtype),
                     preferred_element_type=jnp.float32)
    d_table_VH = jnp.einsum("nh,nv->hv", h_NH, d_NV.astype(dtype),  # ~10 % faster than dᵀ·h.
                            preferred_element_type=jnp.float32).T
    d_bias_V = None
    if bias_V is not None:  # A vector-matrix product, not a column sum (module docstring).
        d_bias_V = jnp.dot(jnp.ones(d_NV.shape[:1], jnp.float32), d_NV).astype(bias_V.dtype)
    return (d_h_NH.reshape(h_XH.shape).astype(h_XH.dtype), d_table_VH.astype(table_VH.dtype),
            d_bias_V)


_tied_logits.defvjp(_forward, _backward)

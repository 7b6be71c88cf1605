"""The tied output layer: values and hand-written gradients against the plain `h · Eᵀ + b`, and
the layer fused with the softmax cross-entropy against `losses.softmax_nll` of its logits."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.losses import softmax_nll
from dlx.nn.tied_decoder import tied_logits, tied_softmax_nll


def _inputs(seed=0, vocab=37, hidden=8):
    rng = np.random.default_rng(seed)
    h_BPH = jnp.asarray(rng.normal(size=(2, 5, hidden)), jnp.float32)
    table_VH = jnp.asarray(rng.normal(size=(vocab, hidden)), jnp.float32)
    bias_V = jnp.asarray(rng.normal(size=(vocab,)), jnp.float32)
    g_BPV = jnp.asarray(rng.normal(size=(2, 5, vocab)), jnp.float32)
    return h_BPH, table_VH, bias_V, g_BPV


@pytest.mark.parametrize("with_bias", [True, False])
def test_values_and_gradients_equal_the_plain_expression(with_bias):
    h_BPH, table_VH, bias_V, g_BPV = _inputs()
    bias_V = bias_V if with_bias else None

    def ours(h, table, bias):
        return (g_BPV * tied_logits(h, table, bias)).sum()

    def plain(h, table, bias):
        logits = h @ table.T
        return (g_BPV * (logits if bias is None else logits + bias[None, None])).sum()

    expected_BPV = h_BPH @ table_VH.T + (0.0 if bias_V is None else bias_V[None, None])
    chex.assert_trees_all_close(tied_logits(h_BPH, table_VH, bias_V), expected_BPV, rtol=1e-5,
                                atol=1e-5)
    ours_grads = jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(h_BPH, table_VH, bias_V)
    plain_grads = jax.grad(plain, argnums=(0, 1, 2))(h_BPH, table_VH, bias_V)
    chex.assert_trees_all_close(ours_grads, plain_grads, rtol=1e-5, atol=1e-5)


def test_bfloat16_product_gives_float32_logits_and_float32_gradients():
    h_BPH, table_VH, bias_V, g_BPV = _inputs(seed=1)
    logits = tied_logits(h_BPH, table_VH, bias_V, jnp.bfloat16)
    assert logits.dtype == jnp.float32
    chex.assert_trees_all_close(logits, h_BPH @ table_VH.T + bias_V[None, None], rtol=0.05,
                                atol=0.1)
    grads = jax.grad(lambda h, t, b: (g_BPV * tied_logits(h, t, b, jnp.bfloat16)).sum(),
                     argnums=(0, 1, 2))(h_BPH, table_VH, bias_V)
    assert [g.dtype for g in grads] == [jnp.float32] * 3
    chex.assert_trees_all_close(grads[2], g_BPV.sum((0, 1)), rtol=1e-6)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_cross_entropy_equals_softmax_nll_of_the_logits(with_bias):
    h_BPH, table_VH, bias_V, _ = _inputs(seed=3)
    h_NH = h_BPH.reshape(-1, h_BPH.shape[-1])
    bias_V = bias_V if with_bias else None
    rng = np.random.default_rng(4)
    labels_N = jnp.asarray(rng.integers(0, table_VH.shape[0], h_NH.shape[0]))
    g_N = jnp.asarray(rng.normal(size=h_NH.shape[0]), jnp.float32)
    nll_N, argmax_N = tied_softmax_nll(h_NH, table_VH, bias_V, labels_N)
    logits_NV = tied_logits(h_NH, table_VH, bias_V)
    np.testing.assert_allclose(nll_N, softmax_nll(logits_NV, labels_N), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(argmax_N, logits_NV.argmax(-1))

    def fused(h, table, bias):
        return (g_N * tied_softmax_nll(h, table, bias, labels_N)[0]).sum()

    def plain(h, table, bias):
        logits = h @ table.T + (0.0 if bias is None else bias[None])
        return (g_N * -jnp.take_along_axis(jax.nn.log_softmax(logits), labels_N[:, None],
                                           axis=-1)[:, 0]).sum()

    fused_grads = jax.jit(jax.grad(fused, argnums=(0, 1, 2)))(h_NH, table_VH, bias_V)
    plain_grads = jax.grad(plain, argnums=(0, 1, 2))(h_NH, table_VH, bias_V)
    chex.assert_trees_all_close(fused_grads, plain_grads, rtol=1e-5, atol=1e-6)


def test_fused_cross_entropy_in_bfloat16_products():
    h_BPH, table_VH, bias_V, _ = _inputs(seed=5)
    h_NH = h_BPH.reshape(-1, h_BPH.shape[-1])
    labels_N = jnp.arange(h_NH.shape[0]) % table_VH.shape[0]
    loss = lambda dtype: lambda h, t, b: tied_softmax_nll(h, t, b, labels_N, dtype)[0].mean()
    value, grads = jax.value_and_grad(loss(jnp.bfloat16), argnums=(0, 1, 2))(h_NH, table_VH, bias_V)
    value32, grads32 = jax.value_and_grad(loss(jnp.float32), argnums=(0, 1, 2))(h_NH, table_VH,
                                                                                bias_V)
    assert value.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in grads)
    np.testing.assert_allclose(value, value32, rtol=2e-2)
    chex.assert_trees_all_close(grads, grads32, rtol=5e-2, atol=5e-2)

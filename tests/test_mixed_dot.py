"""dlx.nn.mixed_dot: dense layers as 2-D products, float32 values unchanged; bf16 accumulated in
float32, forward and backward."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dlx.nn import mixed_dot

DENSE = (((2,), (0,)), ((), ()))


def _operands(dtype):
    rng = np.random.default_rng(0)
    x_BTK = jnp.asarray(rng.normal(size=(2, 3, 16)), dtype)
    w_KN = jnp.asarray(rng.normal(size=(16, 8)), dtype)
    return x_BTK, w_KN


def _f32_accumulated(a, b, dims):
    return lax.dot_general(a, b, dims, preferred_element_type=jnp.float32).astype(a.dtype)


def test_float32_is_lax_dot_general_bit_for_bit():
    x_BTK, w_KN = _operands(jnp.float32)
    loss = lambda dot: lambda x, w: (dot(x, w, DENSE) ** 2).sum()
    mixed, stock = (jax.value_and_grad(loss(dot), (0, 1))(x_BTK, w_KN)
                    for dot in (mixed_dot.dot_general, lax.dot_general))
    chex.assert_trees_all_equal(mixed, stock)


def test_dense_layers_multiply_2d_operands_with_unchanged_values():
    x_BTSK = jnp.asarray(np.random.default_rng(4).normal(size=(2, 3, 5, 16)), jnp.float32)
    _, w_KN = _operands(jnp.float32)
    dims = (((3,), (0,)), ((), ()))
    chex.assert_trees_all_equal(mixed_dot.dot_general(x_BTSK, w_KN, dims),
                                lax.dot_general(x_BTSK, w_KN, dims))
    loss = lambda dot: lambda x, w: (dot(x, w, dims) ** 2).sum()
    mixed, stock = (jax.grad(loss(dot), (0, 1))(x_BTSK, w_KN)
                    for dot in (mixed_dot.dot_general, lax.dot_general))
    chex.assert_trees_all_close(mixed, stock, rtol=1e-5, atol=1e-4)  # dw: another sum order
    jaxpr = jax.make_jaxpr(jax.grad(loss(mixed_dot.dot_general), (0, 1)))(x_BTSK, w_KN).jaxpr
    products = [e for e in jaxpr.eqns if e.primitive is lax.dot_general_p]
    assert len(products) == 3  # forward, dx, dw
    assert all(v.aval.ndim == 2 for e in products for v in e.invars)


def test_bf16_dense_and_its_gradients_accumulate_in_float32():
    x_BTK, w_KN = _operands(jnp.bfloat16)
    g_BTN = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 8)), jnp.bfloat16)
    out, vjp = jax.vjp(lambda x, w: mixed_dot.dot_general(x, w, DENSE), x_BTK, w_KN)
    assert out.dtype == jnp.bfloat16
    chex.assert_trees_all_equal(out, _f32_accumulated(x_BTK, w_KN, DENSE))
    dx_BTK, dw_KN = vjp(g_BTN)
    chex.assert_trees_all_equal(dx_BTK, _f32_accumulated(g_BTN, w_KN.T, DENSE))
    chex.assert_trees_all_equal(dw_KN, _f32_accumulated(
        x_BTK.reshape(6, 16), g_BTN.reshape(6, 8), (((0,), (0,)), ((), ()))))
    # And all of it is the float32 gradient to bf16 rounding.
    x32, w32, g32 = (a.astype(jnp.float32) for a in (x_BTK, w_KN, g_BTN))
    _, vjp32 = jax.vjp(lambda x, w: x @ w, x32, w32)
    for low, full in zip((dx_BTK, dw_KN), vjp32(g32)):
        np.testing.assert_allclose(low.astype(jnp.float32), full, rtol=2e-2, atol=2e-2)


def test_other_contractions_accumulate_in_float32_and_differentiate():
    q_BHTD, k_BHSD = (jnp.asarray(np.random.default_rng(s).normal(size=(2, 2, 4, 8)), jnp.bfloat16)
                      for s in (2, 3))
    dims = (((3,), (3,)), ((0, 1), (0, 1)))
    out = mixed_dot.dot_general(q_BHTD, k_BHSD, dims)
    chex.assert_trees_all_equal(out, _f32_accumulated(q_BHTD, k_BHSD, dims))
    grads = jax.grad(lambda q: mixed_dot.dot_general(q, k_BHSD, dims).astype(jnp.float32).sum())(
        q_BHTD)
    assert grads.dtype == jnp.bfloat16 and bool(jnp.isfinite(grads.astype(jnp.float32)).all())


def test_flax_dense_takes_it():
    x_BTK, _ = _operands(jnp.float32)
    dense = nn.Dense(8, dtype=jnp.bfloat16, dot_general=mixed_dot.dot_general)
    params = dense.init(jax.random.PRNGKey(0), x_BTK)
    stock = nn.Dense(8, dtype=jnp.bfloat16).apply(params, x_BTK)
    out = dense.apply(params, x_BTK)
    assert out.dtype == jnp.bfloat16 and out.shape == (2, 3, 8)
    np.testing.assert_allclose(out.astype(jnp.float32), stock.astype(jnp.float32), rtol=2e-2,
                               atol=2e-2)

"""Hand-written activations: derivatives vs jax.grad, values vs jax.nn, stable sigmoid, lookup."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import pytest
from absl.testing import parameterized

from dlx.errors import DlxError
from dlx.nn import activations

# (name, keyword arguments) for every activation and its non-default modes.
CASES = [("linear", {}), ("step", {}), ("sigmoid", {}), ("tanh", {}), ("relu", {}),
         ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("gelu", {}),
         ("gelu", {"approximate": True}), ("silu", {})]

REFERENCES = [("sigmoid", {}, jax.nn.sigmoid), ("tanh", {}, jnp.tanh), ("relu", {}, jax.nn.relu),
              ("leaky_relu", {}, jax.nn.leaky_relu),
              ("leaky_relu", {"negative_slope": 0.2},
               functools.partial(jax.nn.leaky_relu, negative_slope=0.2)),
              ("gelu", {}, functools.partial(jax.nn.gelu, approximate=False)),
              ("gelu", {"approximate": True}, functools.partial(jax.nn.gelu, approximate=True)),
              ("silu", {}, jax.nn.silu)]


def _points() -> jax.Array:
    """`x_N`: random points, a grid over [-50, 50], and ±50, none exactly 0."""
    random = 4 * jax.random.normal(jax.random.PRNGKey(0), (256,))
    grid = jnp.linspace(-50.0, 50.0, 64)  # Even count, so 0 is not on the grid.
    x = jnp.concatenate([random, grid, jnp.array([-50.0, 50.0, -1e-3, 1e-3])])
    return jnp.where(x == 0, 1e-3, x)


def _name(case) -> str:
    return case[0] + "".join(f"_{k}={v}" for k, v in case[1].items())


class ActivationTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters((_name(c), *c) for c in CASES)
    def test_derivative_matches_grad(self, name, kwargs):
        x = _points()
        fn = functools.partial(activations.get(name), **kwargs)
        expected = jax.jit(jax.vmap(jax.grad(fn)))(x)
        got = self.variant(functools.partial(activations.derivative(name), **kwargs))(x)
        chex.assert_shape(got, x.shape)
        chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters((_name(r), *r) for r in REFERENCES)
    def test_matches_jax_nn(self, name, kwargs, reference):
        x = _points().at[0].set(0.0)
        got = self.variant(functools.partial(activations.get(name), **kwargs))(x)
        chex.assert_trees_all_close(got, reference(x), rtol=1e-6, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sigmoid_is_stable_and_precise(self):
        x = jnp.array([-1000.0, -100.0, 100.0, 1000.0])
        s = self.variant(activations.sigmoid)(x)
        chex.assert_tree_all_finite(s)
        chex.assert_trees_all_close(s, jnp.array([0.0, 0.0, 1.0, 1.0]), atol=1e-30)
        grad = self.variant(jax.vmap(jax.grad(activations.sigmoid)))(x)
        chex.assert_tree_all_finite(grad)
        chex.assert_trees_all_close(grad, jnp.zeros_like(x), atol=1e-30)
        # Relative precision in the far tails, where a naive 1 - 1/(1+exp(x)) gives exactly 0.
        wide = jnp.linspace(-80.0, 80.0, 321)
        chex.assert_trees_all_close(self.variant(activations.sigmoid)(wide), jax.nn.sigmoid(wide),
                                    rtol=2e-6, atol=0.0)

    def test_step_and_relu_conventions_at_zero(self):
        x = jnp.array([-1.0, 0.0, 1.0])
        chex.assert_trees_all_equal(activations.step(x), jnp.array([0.0, 0.0, 1.0]))
        chex.assert_trees_all_equal(activations.derivative("relu")(x), jnp.array([0.0, 0.0, 1.0]))
        chex.assert_trees_all_equal(activations.derivative("step")(x), jnp.zeros(3))


def test_activations_dict_holds_the_hand_written_functions():
    assert activations.ACTIVATIONS["gelu"] is activations.gelu
    assert set(activations.ACTIVATIONS) == {n for n, _ in CASES}


@pytest.mark.parametrize("lookup", [activations.get, activations.derivative])
def test_unknown_name_raises_one_line(lookup):
    with pytest.raises(DlxError, match="unknown activation 'swish'") as info:
        lookup("swish")
    assert "\n" not in str(info.value) and "relu" in str(info.value)

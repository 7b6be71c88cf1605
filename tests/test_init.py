"""Initialisers: empirical std vs the variance formulas, bounds, fans, and use inside flax."""

from __future__ import annotations

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.errors import DlxError
from dlx.nn import init

KEY = jax.random.PRNGKey(0)

# name -> (initialiser, expected std from (fan_in, fan_out), whether it is bounded by std*sqrt(3)).
FAN_SCALED = {
    "he_normal": (init.he_normal, lambda i, o: math.sqrt(2 / i), False),
    "he_uniform": (init.he_uniform, lambda i, o: math.sqrt(2 / i), True),
    "xavier_normal": (init.xavier_normal, lambda i, o: math.sqrt(2 / (i + o)), False),
    "xavier_uniform": (init.xavier_uniform, lambda i, o: math.sqrt(2 / (i + o)), True),
    "lecun_normal": (init.lecun_normal, lambda i, o: math.sqrt(1 / i), False),
}


def _check_moments(w: jax.Array, std: float, bounded: bool) -> None:
    w = np.asarray(w, np.float64)  # NumPy: no per-shape XLA compiles for the reductions.
    assert abs(w.std() / std - 1) < 0.02
    assert abs(w.mean()) < 0.01 * std
    if bounded:
        assert np.abs(w).max() <= std * math.sqrt(3) * (1 + 1e-6)


@pytest.mark.parametrize("name", FAN_SCALED)
@pytest.mark.parametrize("shape", [(1024, 1024), (512, 2048)])
def test_fan_scaled_std_matches_formula(name, shape):
    initialiser, std_of, bounded = FAN_SCALED[name]
    w = initialiser(KEY, shape)
    chex.assert_shape(w, shape)
    chex.assert_type(w, jnp.float32)
    _check_moments(w, std_of(*shape), bounded)


@pytest.mark.parametrize("name", FAN_SCALED)
def test_conv_kernel_uses_receptive_field_fans(name):
    shape = (3, 3, 16, 32)
    assert init.fans(shape) == (9 * 16, 9 * 32)
    initialiser, std_of, bounded = FAN_SCALED[name]
    w = initialiser(KEY, (64,) + shape)  # A leading 64 adds samples; fans scale by it too.
    _check_moments(w, std_of(64 * 9 * 16, 64 * 9 * 32), bounded)


@pytest.mark.parametrize("make, std, bounded", [(lambda: init.normal(0.3), 0.3, False),
                                                (lambda: init.uniform(0.3), 0.3 / math.sqrt(3), True)])
def test_normal_and_uniform_factories(make, std, bounded):
    w = make()(KEY, (1024, 1024))
    _check_moments(w, std, bounded)


def test_zeros_and_constant_are_exact():
    chex.assert_trees_all_equal(init.zeros(KEY, (3, 4)), jnp.zeros((3, 4)))
    chex.assert_trees_all_equal(init.constant(0.5)(KEY, (2, 5), jnp.bfloat16),
                                jnp.full((2, 5), 0.5, jnp.bfloat16))


def test_dtype_is_respected():
    chex.assert_type(init.he_uniform(KEY, (8, 8), jnp.bfloat16), jnp.bfloat16)
    chex.assert_type(init.xavier_normal(KEY, (8, 8), jnp.float16), jnp.float16)


def test_works_as_flax_dense_kernel_init():
    model = nn.Dense(256, kernel_init=init.he_normal, bias_init=init.constant(0.1))
    params = model.init(KEY, jnp.ones((2, 512)))["params"]
    chex.assert_shape(params["kernel"], (512, 256))
    _check_moments(params["kernel"], math.sqrt(2 / 512), False)
    chex.assert_trees_all_equal(params["bias"], jnp.full((256,), 0.1))


@pytest.mark.parametrize("name", FAN_SCALED)
@pytest.mark.parametrize("shape", [(), (7,)])
def test_fewer_than_two_dims_raise(name, shape):
    with pytest.raises(DlxError, match="at least 2 dims"):
        FAN_SCALED[name][0](KEY, shape)


@pytest.mark.parametrize("spec, expected", [("he_normal", init.he_normal), ("zeros", init.zeros)])
def test_get_by_name(spec, expected):
    assert init.get(spec) is expected


def test_get_with_an_argument():
    np.testing.assert_array_equal(init.get("constant:0.5")(KEY, (2, 3)), np.full((2, 3), 0.5))
    w = init.get("normal:0.01")(KEY, (256, 256))
    assert abs(float(np.std(w)) - 0.01) < 0.0005


@pytest.mark.parametrize("spec", ["constant", "he_normal:2", "normal:wide", "glorot"])
def test_get_rejects_bad_specs_in_one_line(spec):
    with pytest.raises(DlxError, match="is not known; expected one of: zeros, he_normal"):
        init.get(spec)

"""Hash-keyed dropout: kept fraction, independence, determinism, gradient, and the module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.errors import DlxError
from dlx.nn import dropout

N = 1 << 20


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.9])
def test_kept_fraction_is_one_minus_rate(rate):
    for seed in range(3):
        kept = float(dropout.keep_mask(jax.random.PRNGKey(seed), rate, (N,)).mean())
        assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / N), (seed, kept)


def test_bits_are_uniform_and_neighbours_independent():
    bits = np.asarray(dropout.hash_bits(jax.random.PRNGKey(0), (N,)), np.uint64)
    counts = np.bincount((bits >> 28).astype(np.int64), minlength=16)  # Top 4 bits.
    chi2 = ((counts - N / 16) ** 2 / (N / 16)).sum()
    assert chi2 < 50  # 15 degrees of freedom: P(chi2 > 50) < 1e-5.
    for shift in (1, 2, 64, 1024):
        high = (bits >> 31).astype(np.float64)
        correlation = np.corrcoef(high[:-shift], high[shift:])[0, 1]
        assert abs(correlation) < 5 / np.sqrt(N), (shift, correlation)


def test_masks_of_different_keys_are_independent_and_same_key_repeats():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    a = np.asarray(dropout.keep_mask(k1, 0.5, (N,)))
    b = np.asarray(dropout.keep_mask(k2, 0.5, (N,)))
    assert abs((a == b).mean() - 0.5) < 5 * 0.5 / np.sqrt(N)
    np.testing.assert_array_equal(a, dropout.keep_mask(k1, 0.5, (N,)))
    # Not a shifted copy: no offset lines b up with a.
    best = max((a[s:] == b[:-s]).mean() for s in range(1, 2000))
    assert best < 0.51


def test_dropout_scales_kept_values_and_its_gradient_is_the_mask():
    key, x = jax.random.PRNGKey(3), jnp.linspace(1.0, 2.0, 4096)
    y = dropout.dropout(key, 0.25, x)
    keep = dropout.keep_mask(key, 0.25, x.shape)
    np.testing.assert_allclose(y, np.where(keep, x / 0.75, 0.0), rtol=1e-6)
    grad = jax.grad(lambda v: dropout.dropout(key, 0.25, v).sum())(x)
    np.testing.assert_allclose(grad, np.where(keep, 1 / 0.75, 0.0), rtol=1e-6)
    assert dropout.dropout(key, 0.0, x) is x


def test_module_is_identity_when_deterministic_and_keyed_by_the_dropout_rng():
    module = dropout.Dropout(0.5)
    x = jnp.ones((64, 64))
    np.testing.assert_array_equal(module.apply({}, x, deterministic=True), x)
    one = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(1)})
    two = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(2)})
    assert set(np.unique(one)) == {0.0, 2.0}
    assert not np.array_equal(one, two)


def test_bad_rate_is_one_line():
    with pytest.raises(DlxError, match="dropout rate=1.0 is invalid"):
        dropout.keep_mask(jax.random.PRNGKey(0), 1.0, (4,))

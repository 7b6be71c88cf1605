"""`distinct_units` counts the units of each layer that differ."""

import numpy as np

from dlx.analysis import distinct_units


def test_counts_identical_and_distinct_units():
    params = {"Dense_0": {"kernel": np.full((4, 6), 0.3), "bias": np.zeros(6)},
              "Dense_1": {"kernel": np.arange(12.0).reshape(6, 2), "bias": np.zeros(2)},
              "Dense_2": {"kernel": np.zeros((2, 3)), "bias": np.array([0.0, 1.0, 1.0])},
              "BatchNorm_0": {"scale": np.ones(6)}}
    assert distinct_units(params) == {"Dense_0": 1, "Dense_1": 2, "Dense_2": 2}


def test_tiny_float_noise_does_not_split_units_but_real_differences_do():
    kernel = np.tile(np.linspace(-1, 1, 5)[:, None], (1, 4))
    noisy = kernel + 1e-9 * np.random.default_rng(0).normal(size=kernel.shape)
    assert distinct_units({"d": {"kernel": noisy}}) == {"d": 1}
    noisy[0, 2] += 0.01
    assert distinct_units({"d": {"kernel": noisy}}) == {"d": 2}

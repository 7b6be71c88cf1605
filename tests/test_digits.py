"""The sklearn 8x8 digits source, and the CNN experiments reaching their accuracies via the CLI."""

import numpy as np
import pytest

from dlx import config as config_lib
from dlx import data as data_lib

from conftest import train_experiment


def digits_config(seed: int = 0):
    data_config = config_lib.base().data
    data_config.update({"name": "digits", "seed": seed})
    return data_config


@pytest.fixture(scope="module")
def splits():
    return data_lib.load(digits_config())


def test_digits_shapes_dtypes_and_range(splits):
    assert splits.num_classes == 10
    for split, rows in (("train", 1437), ("test", 360)):
        arrays = splits.named(split)
        assert arrays["x"].shape == (rows, 8, 8) and arrays["x"].dtype == np.float32
        assert arrays["y"].shape == (rows,) and arrays["y"].dtype == np.int32
        assert arrays["x"].min() == 0.0 and arrays["x"].max() == 1.0
        assert set(np.unique(arrays["y"])) == set(range(10))
    assert splits.val == {}


def test_digits_split_is_stratified_and_disjoint(splits):
    from sklearn.datasets import load_digits
    total = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(splits.test["y"], minlength=10)
    np.testing.assert_array_equal(test_counts + np.bincount(splits.train["y"], minlength=10),
                                  total)
    assert np.all(np.abs(test_counts - 0.2 * total) <= 1)  # Every class is 20 % test.
    train_rows = {row.tobytes() for row in splits.train["x"]}
    assert len(train_rows) == 1437  # The 1797 images are all distinct, so disjoint means this:
    assert not train_rows & {row.tobytes() for row in splits.test["x"]}


def test_digits_split_is_deterministic_per_data_seed(splits):
    again = data_lib.load(digits_config())
    for split in ("train", "test"):
        for key in ("x", "y"):
            np.testing.assert_array_equal(splits.named(split)[key], again.named(split)[key])
    other = data_lib.load(digits_config(seed=1))
    assert not np.array_equal(splits.test["y"], other.test["y"])


def test_digits_validation_carve_comes_from_train():
    data_config = digits_config()
    data_config.validation_size = 137
    carved = data_lib.load(data_config)
    assert len(carved.train["y"]) == 1300 and len(carved.val["y"]) == 137
    assert len(carved.test["y"]) == 360


@pytest.mark.slow(18)
def test_digits_cnn_reaches_95_percent_in_150_steps(tmp_path):
    # Measured at 150 steps: 97.8 / 96.4 / 97.2 % for seeds 0 / 1 / 2 (the full 600: 98.6 %).
    summary = train_experiment(tmp_path, "digits_cnn", "--config.train.steps=150",
                               "--config.train.eval_every=150",
                               "--config.train.checkpoint_every=150")
    assert summary["final_step"] == 150
    assert summary["eval"]["test"]["accuracy"] >= 0.95, summary


def test_mnist1d_cnn_beats_the_mlp_in_500_steps(tmp_path):
    # Measured at 500 steps, seeds 0 / 1 / 2: CNN 88.9 / 89.8 / 88.0 %, MLP 62.7 / 65.6 / 62.1 %.
    args = ("--config.train.steps=500", "--config.train.checkpoint_every=500")
    cnn = train_experiment(tmp_path / "cnn", "mnist1d_cnn", *args)["eval"]["test"]["accuracy"]
    mlp = train_experiment(tmp_path / "mlp", "mnist1d_mlp", *args)["eval"]["test"]["accuracy"]
    assert cnn >= 0.85 and cnn > mlp + 0.2, (cnn, mlp)

"""MNIST-1D generation and caching, and deterministic resumable batching."""

import numpy as np
import pytest
from ml_collections import ConfigDict

from dlx import config as config_lib
from dlx import data as data_lib
from dlx.data import mnist1d
from dlx.data.batching import EpochBatcher, eval_batches
from dlx.errors import DlxError


def mnist1d_config(**fields) -> ConfigDict:
    data_config = config_lib.base().data
    data_config.update({"name": "mnist1d", "seed": 42, "num_samples": 5000, **fields})
    return data_config


@pytest.fixture(scope="module")
def splits():
    return data_lib.load(mnist1d_config())


def test_mnist1d_matches_paper_split(splits):
    assert splits.train["x"].shape == (4000, 40) and splits.train["x"].dtype == np.float32
    assert splits.test["x"].shape == (1000, 40) and splits.test["y"].shape == (1000,)
    assert splits.num_classes == 10
    assert set(np.unique(splits.train["y"])) == set(range(10))


def test_mnist1d_equals_package_output_and_keeps_global_rng(splits):
    from mnist1d.data import get_dataset_args, make_dataset
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    regenerated = mnist1d.generate()
    assert np.array_equal(np.random.get_state()[1], before)
    raw = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(splits.train["x"], raw["x"].astype(np.float32))
    np.testing.assert_array_equal(splits.test["y"], raw["y_test"])
    np.testing.assert_array_equal(np.asarray(regenerated["train"]["y"]), raw["y"])


def test_unknown_source_is_a_clear_error():
    with pytest.raises(DlxError, match="data.name='nope'.*mnist1d"):
        data_lib.load(ConfigDict({"name": "nope"}))


def _arrays(n=10):
    return {"x": np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
            "y": np.arange(n)}


def test_each_epoch_is_a_permutation():
    batcher = EpochBatcher(_arrays(10), batch_size=5, seed=0)
    first = np.concatenate([next(batcher)["y"] for _ in range(2)])
    second = np.concatenate([next(batcher)["y"] for _ in range(2)])
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert not np.array_equal(first, second)


def test_remainder_is_dropped():
    batcher = EpochBatcher(_arrays(10), batch_size=4, seed=0)
    assert batcher.batches_per_epoch == 2
    seen = [next(batcher)["y"] for _ in range(3)]
    assert batcher.state() == {"epoch": 1, "index": 1}
    assert all(len(b) == 4 for b in seen)


def test_restored_batcher_continues_identically():
    reference = EpochBatcher(_arrays(10), batch_size=3, seed=7)
    expected = [next(reference)["y"] for _ in range(9)]
    first = EpochBatcher(_arrays(10), batch_size=3, seed=7)
    for _ in range(4):
        next(first)
    resumed = EpochBatcher(_arrays(10), batch_size=3, seed=7)
    resumed.restore(first.state())
    assert all(np.array_equal(next(resumed)["y"], e) for e in expected[4:])


def test_batch_larger_than_dataset():
    with pytest.raises(DlxError, match="exceeds the 10 training examples"):
        EpochBatcher(_arrays(10), batch_size=11, seed=0)


def test_eval_batches_cover_every_row_once_with_mask():
    batches = list(eval_batches(_arrays(10), batch_size=4, multiple_of=3))
    assert [len(b["y"]) for b in batches] == [6, 6]
    real = np.concatenate([b["y"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(real, np.arange(10))
    assert batches[-1]["mask"].sum() == 4


def test_validation_rows_are_carved_from_train_only_and_do_not_follow_the_seed(splits):
    carved = data_lib.load(mnist1d_config(validation_size=500, train_size=1000))
    assert carved.val["x"].shape == (500, 40) and carved.train["x"].shape == (1000, 40)
    np.testing.assert_array_equal(carved.test["x"], splits.test["x"])
    rows = lambda x: {row.tobytes() for row in x}
    train, val, full = rows(carved.train["x"]), rows(carved.val["x"]), rows(splits.train["x"])
    assert not train & val and train <= full and val <= full
    again = data_lib.carve(splits, 500, 1000)
    np.testing.assert_array_equal(again.val["y"], carved.val["y"])


def test_carving_more_than_the_train_set_is_a_clear_error(splits):
    with pytest.raises(DlxError, match=r"=3000 \+ data.train_size=2000 exceeds the 4000"):
        data_lib.carve(splits, 3000, 2000)


def test_xor_is_the_four_points():
    xor = data_lib.load(ConfigDict({"name": "xor", "train_size": 0, "validation_size": 0}))
    np.testing.assert_array_equal(xor.train["y"], (xor.train["x"][:, 0] != xor.train["x"][:, 1]))
    assert xor.train["x"].shape == (4, 2) and xor.num_classes == 2


def test_an_unreadable_mnist1d_cache_file_is_generated_again(tmp_path):
    first = mnist1d.cached(tmp_path, seed=0, num_samples=200)
    (path,) = tmp_path.glob("mnist1d-*.npz")
    path.write_bytes(b"cut short by a full disk")
    again = mnist1d.cached(tmp_path, seed=0, num_samples=200)
    for split in mnist1d.SPLITS:
        for field in ("x", "y"):
            np.testing.assert_array_equal(again[split][field], first[split][field])
    with np.load(path) as stored:
        np.testing.assert_array_equal(stored["x_test"], first["test"]["x"])

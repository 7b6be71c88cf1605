"""Hub image sources from tiny local copies with the hub's schema, their cache, errors and CLI."""

import json
import shutil

import datasets
import numpy as np
import PIL.Image
import pytest

from dlx import config as config_lib
from dlx import data as data_lib
from dlx.errors import DlxError

from conftest import REPO, run_cli, train_args
from test_cli_errors import assert_one_line_error

MNIST_CNN = str(REPO / "experiments" / "mnist_cnn.py")
DIGITS = [str(i) for i in range(10)]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def write_copy(path, image_shape, image_column="image", label=None, splits=("train", "test"),
               names=DIGITS, rows=(40, 20)):
    """Saves random uint8 images (one PIL image per row) with labels; returns their arrays."""
    rng = np.random.default_rng(0)
    label = label or datasets.ClassLabel(names=names)
    features = datasets.Features({image_column: datasets.Image(), "label": label})
    written, parts = {}, {}
    for split, count in zip(splits, rows):
        x = rng.integers(0, 256, (count, *image_shape), dtype=np.uint8)
        y = np.arange(count) % len(names)
        written[split] = {"x": x, "y": y}
        parts[split] = datasets.Dataset.from_dict(
            {image_column: [PIL.Image.fromarray(image) for image in x], "label": y.tolist()},
            features=features)
    datasets.DatasetDict(parts).save_to_disk(str(path))
    return written


@pytest.fixture(scope="module")
def mnist_copy(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist") / "copy"
    return path, write_copy(path, (28, 28))


def data_config(name, path, cache_dir=""):
    config = config_lib.load(MNIST_CNN).data
    config.update({"name": name, "path": str(path), "cache_dir": str(cache_dir)})
    return config


def assert_matches(splits, written):
    assert splits.num_classes == 10 and splits.val == {}
    for split, arrays in written.items():
        x, y = splits.named(split)["x"], splits.named(split)["y"]
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape == arrays["x"].shape and 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_array_equal(x, arrays["x"].astype(np.float32) / 255.0)
        np.testing.assert_array_equal(y, arrays["y"])


def test_mnist_from_a_local_copy_equals_the_images_written(mnist_copy, tmp_path):
    path, written = mnist_copy
    assert_matches(data_lib.load(data_config("mnist", path, tmp_path)), written)


def test_cifar10_local_copy_gives_colour_images(tmp_path):
    written = write_copy(tmp_path / "cifar", (32, 32, 3), image_column="img",
                         names=CIFAR_CLASSES, rows=(24, 12))
    splits = data_lib.load(data_config("cifar10", tmp_path / "cifar", tmp_path / "cache"))
    assert splits.train["x"].shape == (24, 32, 32, 3)
    assert_matches(splits, written)


def test_parquet_files_laid_out_like_the_hub_load_through_load_dataset(mnist_copy, tmp_path):
    path, written = mnist_copy
    for split, dataset in datasets.load_from_disk(str(path)).items():
        dataset.to_parquet(str(tmp_path / "copy" / "mnist" / f"{split}-00000-of-00001.parquet"))
    assert_matches(data_lib.load(data_config("mnist", tmp_path / "copy", tmp_path)), written)
    assert (tmp_path / "hf").is_dir()  # load_dataset's own cache lives beside the npz.


def test_second_load_reads_the_npz_cache(mnist_copy, tmp_path):
    shutil.copytree(mnist_copy[0], tmp_path / "copy")
    config = data_config("fashion_mnist", tmp_path / "copy", tmp_path / "cache")
    first = data_lib.load(config)
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1 and cached[0].name.startswith("fashion_mnist-")
    shutil.rmtree(tmp_path / "copy")  # Only the cache can answer now.
    again = data_lib.load(config)
    for split in ("train", "test"):
        for key in ("x", "y"):
            np.testing.assert_array_equal(again.named(split)[key], first.named(split)[key])
    assert not list((tmp_path / "cache").glob(".*"))  # No temporary file left behind.


def test_cache_is_keyed_by_path(mnist_copy, tmp_path):
    other = write_copy(tmp_path / "other", (28, 28), rows=(10, 5))
    data_lib.load(data_config("mnist", mnist_copy[0], tmp_path))
    assert_matches(data_lib.load(data_config("mnist", tmp_path / "other", tmp_path)), other)


def test_validation_carve_works_on_images(mnist_copy, tmp_path):
    config = data_config("mnist", mnist_copy[0], tmp_path)
    config.validation_size = 8
    splits = data_lib.load(config)
    assert splits.train["x"].shape == (32, 28, 28) and splits.val["x"].shape == (8, 28, 28)


@pytest.mark.parametrize("copy, fragment", [
    (dict(image_column="pixels"), "has columns pixels, label in its train split; expected image "
                                  "(images) and label (labels)"),
    (dict(splits=("train",)), "lacks the split test: found train, expected train and test"),
    (dict(label=datasets.Value("int64")), "column 'label' is a Value, expected a ClassLabel"),
])
def test_bad_local_copies_are_one_line_errors(tmp_path, copy, fragment):
    write_copy(tmp_path / "bad", (28, 28), **copy)
    with pytest.raises(DlxError) as info:
        data_lib.load(data_config("mnist", tmp_path / "bad", tmp_path))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_local_copy_is_one_line(tmp_path):
    with pytest.raises(DlxError, match=r"data.path='.*nowhere': cannot load mnist from it "
                                       r"\(.*\); expected a DatasetDict.save_to_disk directory"):
        data_lib.load(data_config("mnist", tmp_path / "nowhere", tmp_path))


def test_config_without_path_names_the_key():
    config = config_lib.base().data
    config.name = "cifar10"
    with pytest.raises(DlxError, match="data.name='cifar10' needs the key data.path"):
        data_lib.load(config)


def test_experiment_config_loads():
    config = config_lib.build(MNIST_CNN, [])
    assert (config.data.name, config.data.path, config.data.augment) == ("mnist", "", "shift:2")
    assert config.model.name == "simple_cnn"


def test_unreachable_hub_says_to_set_data_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run_cli(*train_args(tmp_path, "--config.data.cache_dir=" + str(tmp_path),
                                 config=MNIST_CNN))
    assert_one_line_error(result, "cannot load mnist from the Hugging Face hub as ylecun/mnist",
                          "set data.path to a local copy, or connect")


def test_mnist_cnn_trains_on_a_local_copy(mnist_copy, tmp_path):
    result = run_cli(*train_args(
        tmp_path, f"--config.data.path={mnist_copy[0]}", "--config.train.steps=4",
        "--config.train.batch_size=8", "--config.train.eval_batch_size=20",
        "--config.train.log_every=2", "--config.train.eval_every=4",
        "--config.train.checkpoint_every=4", config=MNIST_CNN))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["final_step"] == 4 and np.isfinite(summary["train_loss"])
    assert 0.0 <= summary["eval"]["test"]["accuracy"] <= 1.0

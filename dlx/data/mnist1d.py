"""MNIST-1D (Greydanus 2020), generated locally with the paper's arguments and cached as .npz."""

from __future__ import annotations

import hashlib
import json
import pathlib
import zipfile

import ml_collections
import numpy as np

import dlx.data as data_lib
from dlx.train.outputs import write_npz

NUM_CLASSES = 10
SPLITS = ("train", "test")


def _paper_args(seed: int, num_samples: int):
    from mnist1d.data import get_dataset_args
    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    return args


def generate(seed: int = 42, num_samples: int = 5000) -> dict[str, dict[str, np.ndarray]]:
    """Runs `mnist1d.make_dataset` (never its download path): {"train", "test"} -> {"x" float32
    (N, 40), "y" int64 (N,)}, 4000 train / 1000 test by default."""
    from mnist1d.data import make_dataset
    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG: restore it after.
    try:
        raw = make_dataset(_paper_args(seed, num_samples))
    finally:
        np.random.set_state(state)
    return {"train": {"x": raw["x"].astype(np.float32), "y": raw["y"].astype(np.int64)},
            "test": {"x": raw["x_test"].astype(np.float32), "y": raw["y_test"].astype(np.int64)}}


def cached(root: pathlib.Path, seed: int, num_samples: int) -> dict[str, dict[str, np.ndarray]]:
    """`generate`'s splits, generated once per (seed, num_samples) into `root` (written
    atomically, so concurrent first runs leave one whole file); an unreadable cache file is
    generated again, the data being a pure function of (seed, num_samples)."""
    key = hashlib.sha1(json.dumps([seed, num_samples]).encode()).hexdigest()[:10]
    path = root / f"mnist1d-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return {split: {field: stored[f"{field}_{split}"] for field in ("x", "y")}
                        for split in SPLITS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass
    splits = generate(seed, num_samples)
    write_npz(path, {f"{field}_{split}": array for split, arrays in splits.items()
                     for field, array in arrays.items()})
    return splits


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """Splits with `x` float32 (N, 40) and `y` int32 (N,)."""
    splits = cached(data_lib.cache_dir(data_config), data_config.seed, data_config.num_samples)

    def arrays(split):
        return {"x": splits[split]["x"], "y": splits[split]["y"].astype(np.int32)}

    return data_lib.Splits(train=arrays("train"), test=arrays("test"), num_classes=NUM_CLASSES)

"""MNIST-1D (Greydanus 2020), generated locally with the paper's arguments and cached as a dataset."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import tempfile
from typing import TYPE_CHECKING

import ml_collections
import numpy as np

import dlx.data as data_lib

if TYPE_CHECKING:  # Imported where used: dlx.data imports every source to list them.
    import datasets

NUM_CLASSES = 10


def _paper_args(seed: int, num_samples: int):
    from mnist1d.data import get_dataset_args
    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    return args


def generate(seed: int = 42, num_samples: int = 5000) -> datasets.DatasetDict:
    """Runs `mnist1d.make_dataset` (never its download path): 4000 train / 1000 test by default."""
    import datasets
    from mnist1d.data import make_dataset
    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG; leave it as we found it.
    try:
        raw = make_dataset(_paper_args(seed, num_samples))
    finally:
        np.random.set_state(state)
    features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32")),
                                  "y": datasets.ClassLabel(num_classes=NUM_CLASSES)})

    def split(x, y):
        return datasets.Dataset.from_dict({"x": x.astype(np.float32), "y": y.astype(np.int64)},
                                          features=features)

    return datasets.DatasetDict({"train": split(raw["x"], raw["y"]),
                                 "test": split(raw["x_test"], raw["y_test"])})


def cached(root: pathlib.Path, seed: int, num_samples: int) -> datasets.DatasetDict:
    """Generates once per (seed, num_samples) under `root`, written to a temp dir then renamed."""
    import datasets
    key = hashlib.sha1(json.dumps([seed, num_samples]).encode()).hexdigest()[:10]
    path = root / f"mnist1d-{key}"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=".mnist1d-tmp-"))
        try:
            generate(seed, num_samples).save_to_disk(str(tmp))
            try:
                tmp.rename(path)
            except OSError:  # Another process finished first; its copy is identical.
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(path))


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """Splits with `x` float32 (N, 40) and `y` int32 (N,)."""
    dataset = cached(data_lib.cache_dir(data_config), data_config.seed,
                     data_config.num_samples).with_format("numpy")

    def arrays(split):
        table = dataset[split][:]
        return {"x": np.asarray(table["x"], np.float32), "y": np.asarray(table["y"], np.int32)}

    return data_lib.Splits(train=arrays("train"), test=arrays("test"), num_classes=NUM_CLASSES)

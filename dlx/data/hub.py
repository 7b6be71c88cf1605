"""MNIST, Fashion-MNIST and CIFAR-10 by name through Hugging Face `datasets`, cached as .npz.

With `data.path` empty a source loads its hub id with `datasets.load_dataset(id,
cache_dir=<dlx cache>/hf)`, which needs the hub the first time. Set `data.path` to a local copy
(a `DatasetDict.save_to_disk` directory, or a directory or file `load_dataset` reads, with the
hub's columns and train/test splits) to load that instead. The decoded pixels are cached per
(source, path) as `<dlx cache>/<source>-<key>.npz`, so later loads neither decode nor reach the
hub; delete that file if the local copy changes.

Augmentation (`data.augment`, see dlx.data.augment): `shift:2` suits the digits, which must not be
flipped; CIFAR-10 takes the usual random crop and mirror, `shift:4,flip`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import TYPE_CHECKING

import ml_collections
import numpy as np

import dlx.data as data_lib
from dlx.errors import DlxError
from dlx.train.outputs import write_npz

if TYPE_CHECKING:  # Imported where used: every run lists SOURCES, few load one.
    import datasets

SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Source:
    """A hub dataset: its id, its image and label columns, and the PIL mode its images decode to
    ("L" gives `x` of shape (N, H, W), "RGB" (N, H, W, 3))."""
    hub_id: str
    image: str
    label: str
    mode: str


SOURCES = {
    "mnist": Source("ylecun/mnist", "image", "label", "L"),
    "fashion_mnist": Source("zalando-datasets/fashion_mnist", "image", "label", "L"),
    "cifar10": Source("uoft-cs/cifar10", "img", "label", "RGB"),
}


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _saved_to_disk(path: pathlib.Path) -> bool:
    import datasets
    return ((path / datasets.config.DATASETDICT_JSON_FILENAME).is_file()
            or (path / datasets.config.DATASET_STATE_JSON_FILENAME).is_file())


def _open(name: str, path: str, hf_cache: pathlib.Path):
    """The dataset at `path` (`load_from_disk` if `save_to_disk` wrote it), else the hub's."""
    import datasets
    source = SOURCES[name]
    try:
        if path and _saved_to_disk(pathlib.Path(path)):
            return datasets.load_from_disk(path)
        return datasets.load_dataset(path or source.hub_id, cache_dir=str(hf_cache))
    except (OSError, datasets.exceptions.DatasetsError) as e:  # ConnectionError, not found, ...
        if path:
            raise DlxError(f"data.path={path!r}: cannot load {name} from it ({_first_line(e)}); "
                           f"expected a DatasetDict.save_to_disk directory or files "
                           f"load_dataset reads") from None
        raise DlxError(f"cannot load {name} from the Hugging Face hub as {source.hub_id} "
                       f"({_first_line(e)}); set data.path to a local copy, or connect") from None


def _checked(name: str, where: str, dataset) -> dict[str, datasets.Dataset]:
    """The train and test splits, each with an Image column and a ClassLabel column."""
    import datasets
    source = SOURCES[name]
    splits = dict(dataset) if isinstance(dataset, datasets.DatasetDict) else {}
    missing = [split for split in SPLITS if split not in splits]
    if missing:
        raise DlxError(f"{name} from {where} lacks the split {', '.join(missing)}: found "
                       f"{', '.join(splits) or 'a single unnamed split'}, expected train and test")
    for split in SPLITS:
        features = splits[split].features
        if source.image not in features or source.label not in features:
            raise DlxError(f"{name} from {where} has columns {', '.join(features)} in its {split} "
                           f"split; expected {source.image} (images) and {source.label} (labels)")
        for column, kind in ((source.image, datasets.Image), (source.label, datasets.ClassLabel)):
            if not isinstance(features[column], kind):
                raise DlxError(f"{name} from {where}: column {column!r} is a "
                               f"{type(features[column]).__name__}, expected a {kind.__name__}")
    return {split: splits[split] for split in SPLITS}


def _decode(name: str, where: str, split: datasets.Dataset) -> dict[str, np.ndarray]:
    """`x` uint8 (N, H, W) or (N, H, W, 3) and `y` int32 (N,) of one split."""
    import datasets
    source = SOURCES[name]
    table = (split.select_columns([source.image, source.label])
             .cast_column(source.image, datasets.Image(mode=source.mode))
             .with_format("numpy")[:])
    x = table[source.image]
    if x.dtype != np.uint8:  # Images of several sizes come back as an object array.
        raise DlxError(f"{name} from {where}: the images are not all the same size")
    return {"x": x, "y": np.asarray(table[source.label], np.int32)}


def cached_pixels(name: str, data_config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """`x_<split>` uint8, `y_<split>` int32 and `num_classes`, decoded once per (source, path)."""
    path = data_config.path
    if path:
        path = str(pathlib.Path(path).expanduser().resolve())
    root = data_lib.cache_dir(data_config)
    key = hashlib.sha1(json.dumps([name, SOURCES[name].hub_id, path]).encode()).hexdigest()[:10]
    npz = root / f"{name}-{key}.npz"
    if npz.exists():
        with np.load(npz) as stored:
            return {field: stored[field] for field in stored.files}
    where = path or SOURCES[name].hub_id
    splits = _checked(name, where, _open(name, path, root / "hf"))
    labels = splits["train"].features[SOURCES[name].label]
    arrays = {"num_classes": np.int32(labels.num_classes)}
    for split, dataset in splits.items():
        decoded = _decode(name, where, dataset)
        arrays.update({f"x_{split}": decoded["x"], f"y_{split}": decoded["y"]})
    write_npz(npz, arrays)
    return arrays


def load(name: str, data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """Splits with `x` float32 in [0, 1], (N, H, W) or (N, H, W, 3), and `y` int32 (N,)."""
    pixels = cached_pixels(name, data_config)

    def arrays(split):
        return {"x": pixels[f"x_{split}"].astype(np.float32) / 255.0, "y": pixels[f"y_{split}"]}

    return data_lib.Splits(train=arrays("train"), test=arrays("test"),
                           num_classes=int(pixels["num_classes"]))

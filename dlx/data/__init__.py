"""Data sources by name, a local cache directory, and deterministic resumable batching."""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Callable, Mapping

import ml_collections
import numpy as np

from dlx.errors import DlxError, missing_key

# The validation rows are drawn with this fixed seed, so changing `config.seed` never moves them.
VALIDATION_SEED = 0


@dataclasses.dataclass(frozen=True)
class Splits:
    """Arrays keyed by field name (`x`, `y`, ...) per split; `val` is empty unless carved out.

    `metadata` holds what a source knows beyond the arrays (a token source's vocabulary, special
    ids and baseline scores); its `baseline` entry is copied into the run's summary.
    """
    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    num_classes: int
    val: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    metadata: dict = dataclasses.field(default_factory=dict)

    def named(self, name: str) -> dict[str, np.ndarray]:
        """The split called `name` (train, val or test)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def cache_root(environ: Mapping[str, str] = os.environ) -> pathlib.Path:
    """`$DLX_DATA_DIR`, else `~/.cache/dlx`: where dlx caches data and compiled programs."""
    configured = environ.get("DLX_DATA_DIR", "")
    return pathlib.Path(configured or pathlib.Path.home() / ".cache" / "dlx").expanduser()


def cache_dir(data_config: ml_collections.ConfigDict) -> pathlib.Path:
    """`data.cache_dir`, else `cache_root()`."""
    if data_config.cache_dir:
        return pathlib.Path(data_config.cache_dir).expanduser()
    return cache_root()


def _sources() -> dict[str, Callable[[ml_collections.ConfigDict], Splits]]:
    from dlx.data import (  # Lazily: each source pulls in its own packages.
        digits, hub, mnist1d, reverse, temporal_order, tokens, xor)
    return {"mnist1d": mnist1d.load, "xor": xor.load, "digits": digits.load,
            "temporal_order": temporal_order.load, "reverse": reverse.load, "text": tokens.load,
            "labelled_text": tokens.load_labelled,
            **{name: functools.partial(hub.load, name) for name in hub.SOURCES},
            **_graph_sources()}


def _graph_sources() -> dict[str, Callable[[ml_collections.ConfigDict], Splits]]:
    from dlx.data import coloured_graphs, karate
    return {"karate_club": karate.load, "coloured_graphs": coloured_graphs.load}


def _rows(arrays: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[index] for key, value in arrays.items()}


def carve(splits: Splits, validation_size: int, train_size: int) -> Splits:
    """Moves `validation_size` random train rows into `val`, then keeps the first `train_size` of
    the rest (0 = all); the test split is never touched."""
    available = len(next(iter(splits.train.values())))
    if validation_size < 0 or train_size < 0:
        raise DlxError(f"data.validation_size and data.train_size must be >= 0, got "
                       f"{validation_size} and {train_size}")
    if validation_size + train_size > available:
        raise DlxError(f"data.validation_size={validation_size} + data.train_size={train_size} "
                       f"exceeds the {available} training examples")
    if not validation_size and not train_size:
        return splits
    order = np.random.default_rng(VALIDATION_SEED).permutation(available)
    rest = np.sort(order[validation_size:])
    if train_size:
        rest = rest[:train_size]
    val = _rows(splits.train, np.sort(order[:validation_size])) if validation_size else {}
    return dataclasses.replace(splits, train=_rows(splits.train, rest), val=val)


def load(data_config: ml_collections.ConfigDict) -> Splits:
    """Loads the splits of the source named by `data.name`, then carves out `val` if asked."""
    sources = _sources()
    if data_config.name not in sources:
        raise DlxError(f"data.name={data_config.name!r} is not a known source; "
                       f"expected one of: {', '.join(sources)}")
    try:
        splits = sources[data_config.name](data_config)
    except AttributeError as e:  # ConfigDict raises AttributeError for a missing key.
        raise missing_key("data", data_config.name, e) from None
    splits = carve(splits, data_config.validation_size, data_config.train_size)
    splits = imbalance(splits, data_config.get("imbalance", 1.0))
    labels_N = splits.train.get("y")
    if labels_N is not None and labels_N.ndim == 1 and np.issubdtype(labels_N.dtype, np.integer):
        counts_C = np.bincount(labels_N, minlength=splits.num_classes)
        splits = dataclasses.replace(splits, metadata={
            **splits.metadata, "class_counts": tuple(int(n) for n in counts_C)})
    return splits


def imbalance(splits: Splits, fraction: float) -> Splits:
    """Keeps `fraction` (at least 1) of the train rows of each class c >= C/2, chosen with the
    fixed VALIDATION_SEED, so the train set is deliberately imbalanced; val and test unchanged."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise DlxError(f"data.imbalance must be in (0, 1] (the fraction of the train rows of "
                       f"classes >= C/2 kept; 1 = all), got {fraction!r}")
    if fraction == 1:
        return splits
    labels_N = splits.train.get("y")
    if labels_N is None or labels_N.ndim != 1 or splits.num_classes < 2:
        raise DlxError("data.imbalance < 1 needs a classification source with labels y")
    rng = np.random.default_rng(VALIDATION_SEED)
    keep_N = np.ones(len(labels_N), bool)
    for c in range((splits.num_classes + 1) // 2, splits.num_classes):
        rows = np.flatnonzero(labels_N == c)
        drop = rng.permutation(rows)[max(1, round(fraction * len(rows))):]
        keep_N[drop] = False
    return dataclasses.replace(splits, train=_rows(splits.train, np.flatnonzero(keep_N)))

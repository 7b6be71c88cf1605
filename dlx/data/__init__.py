"""Data sources by name, a local cache directory, and deterministic resumable batching."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Callable

import ml_collections
import numpy as np

from dlx.errors import DlxError, missing_key


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train and test arrays keyed by field name (`x`, `y`, ...), all with the same leading size."""
    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    num_classes: int


def cache_dir(data_config: ml_collections.ConfigDict) -> pathlib.Path:
    """`data.cache_dir`, else `$DLX_DATA_DIR`, else `~/.cache/dlx`."""
    configured = data_config.cache_dir or os.environ.get("DLX_DATA_DIR", "")
    return pathlib.Path(configured or pathlib.Path.home() / ".cache" / "dlx").expanduser()


def _sources() -> dict[str, Callable[[ml_collections.ConfigDict], Splits]]:
    from dlx.data import mnist1d  # Imported lazily: each source pulls in its own packages.
    return {"mnist1d": mnist1d.load}


def load(data_config: ml_collections.ConfigDict) -> Splits:
    """Loads the splits of the source named by `data.name`."""
    sources = _sources()
    if data_config.name not in sources:
        raise DlxError(f"data.name={data_config.name!r} is not a known source; "
                       f"expected one of: {', '.join(sources)}")
    try:
        return sources[data_config.name](data_config)
    except AttributeError as e:  # ConfigDict raises AttributeError for a missing key.
        raise missing_key("data", data_config.name, e) from None

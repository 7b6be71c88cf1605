"""Reports computed from trained parameters, named in `train.reports` and added to `summary.json`."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from flax import traverse_util


def distinct_units(params: Any, decimals: int = 4) -> dict[str, int]:
    """Per layer with a `kernel` (..., in, out): how many of its `out` units differ in their incoming
    weights and bias, compared after scaling by the layer's largest weight and rounding.

    Zero or constant initialisation gives every unit of a layer the same gradient, so they stay
    identical (count 1) however long training runs: the symmetry that random init breaks.
    """
    flat = traverse_util.flatten_dict(params, sep="/")
    counts = {}
    for path, kernel in flat.items():
        if not path.endswith("kernel"):
            continue
        layer = path[: -len("/kernel")]
        units_OI = np.asarray(kernel).reshape(-1, kernel.shape[-1]).T
        bias = flat.get(f"{layer}/bias")
        if bias is not None:
            units_OI = np.concatenate([units_OI, np.asarray(bias).reshape(-1, 1)], axis=1)
        scale = max(float(np.abs(units_OI).max()), 1e-12)
        counts[layer] = int(len(np.unique(np.round(units_OI / scale, decimals), axis=0)))
    return counts


REPORTS: dict[str, Callable[[Any], Any]] = {"distinct_units": distinct_units}

"""XOR: the four points {0,1}^2 labelled x1 != x2 — the task a single-layer perceptron cannot learn."""

from __future__ import annotations

import ml_collections
import numpy as np

import dlx.data as data_lib

X_4x2 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
Y_4 = np.array([0, 1, 1, 0], np.int32)


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """Train and test are the same four points (`x` float32 (4, 2), `y` int32 (4,)), two classes."""
    del data_config
    points = {"x": X_4x2.copy(), "y": Y_4.copy()}
    return data_lib.Splits(train=points, test={k: v.copy() for k, v in points.items()},
                           num_classes=2)

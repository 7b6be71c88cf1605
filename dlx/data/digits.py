"""scikit-learn's 8x8 handwritten digits (1797 images, bundled with sklearn, so always offline)."""

from __future__ import annotations

import ml_collections
import numpy as np

import dlx.data as data_lib

NUM_CLASSES = 10
TEST_FRACTION = 0.2  # 1437 train / 360 test.


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """Splits with `x` float32 (N, 8, 8) in [0, 1] and `y` int32 (N,), stratified by class.

    The split is drawn with `data.seed`, so it is fixed for a given experiment whatever `seed`.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x_N88 = (digits.images / 16.0).astype(np.float32)  # Pixel counts are 0..16.
    y_N = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x_N88, y_N, test_size=TEST_FRACTION, stratify=y_N, random_state=data_config.seed)
    return data_lib.Splits(train={"x": x_train, "y": y_train}, test={"x": x_test, "y": y_test},
                           num_classes=NUM_CLASSES)

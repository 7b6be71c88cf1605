"""The temporal order problem of the LSTM paper (Hochreiter & Schmidhuber 1997, experiment 6a).

A sequence over the 8 symbols `a b c d B E X Y` starts with `B`, ends with `E` and is otherwise
random `a`-`d`, except two positions: one in [10, 20] and one in [50, 60] hold `X` or `Y`. The
class is their order: XX, XY, YX or YY. Lengths vary from 100 to 110, so batches are right-padded
to 110 with `lengths` real steps; the answer sits 40 to 100 steps before the end, which a
recurrent net must carry through the distractors. Chance is 25 %.
"""

from __future__ import annotations

import ml_collections
import numpy as np

import dlx.data as data_lib

SYMBOLS = "abcdBEXY"
NOISE, BEGIN, END, X, Y = (0, 1, 2, 3), 4, 5, 6, 7
MIN_LENGTH, MAX_LENGTH = 100, 110
FIRST_SLOT, SECOND_SLOT = (10, 20), (50, 60)  # Inclusive position ranges of the two X/Y symbols.
CLASSES = ("XX", "XY", "YX", "YY")


def generate(num_examples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`x` one-hot uint8 (N, 110, 8) zero after each row's end, `lengths` int32 (N,), `y` (N,)."""
    lengths_N = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, num_examples)
    tokens_NT = rng.choice(np.array(NOISE), size=(num_examples, MAX_LENGTH))
    rows_N = np.arange(num_examples)
    tokens_NT[:, 0] = BEGIN
    tokens_NT[rows_N, lengths_N - 1] = END
    first_N = rng.integers(FIRST_SLOT[0], FIRST_SLOT[1] + 1, num_examples)
    second_N = rng.integers(SECOND_SLOT[0], SECOND_SLOT[1] + 1, num_examples)
    is_y_N2 = rng.integers(0, 2, (num_examples, 2))
    tokens_NT[rows_N, first_N] = np.where(is_y_N2[:, 0], Y, X)
    tokens_NT[rows_N, second_N] = np.where(is_y_N2[:, 1], Y, X)
    real_NT = np.arange(MAX_LENGTH)[None, :] < lengths_N[:, None]
    x_NTF = np.eye(len(SYMBOLS), dtype=np.uint8)[tokens_NT] * real_NT[:, :, None]
    return {"x": x_NTF, "lengths": lengths_N.astype(np.int32),
            "y": (2 * is_y_N2[:, 0] + is_y_N2[:, 1]).astype(np.int32)}


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """`data.num_train` and `data.num_test` sequences drawn with `data.seed` (fixed per run)."""
    rng = np.random.default_rng(data_config.seed)
    train = generate(data_config.num_train, rng)
    return data_lib.Splits(train=train, test=generate(data_config.num_test, rng),
                           num_classes=len(CLASSES))

"""The grid of generated samples, each labelled with the judge's class and confidence."""

from __future__ import annotations

import pathlib

import numpy as np

from dlx.errors import DlxError
from dlx.train import outputs

COLUMN_GAP = 1  # Blank pixels between tiles of a row.
LABEL_BAND = 3  # Blank pixels under each tile, where its label goes.


def tile(x_NHW: np.ndarray, columns: int, fill: float) -> np.ndarray:
    """(N, H, W) with N = rows * columns -> one (rows (H + LABEL_BAND), columns (W + COLUMN_GAP))
    image, row-major, the gaps set to `fill`."""
    count, height, width = x_NHW.shape
    if count % columns:
        raise DlxError(f"{count} samples do not fill rows of {columns}")
    rows = count // columns
    canvas = np.full((rows * (height + LABEL_BAND), columns * (width + COLUMN_GAP)), fill,
                     x_NHW.dtype)
    for index, image_HW in enumerate(x_NHW):
        top = index // columns * (height + LABEL_BAND)
        left = index % columns * (width + COLUMN_GAP)
        canvas[top:top + height, left:left + width] = image_HW
    return canvas


def sample_grid(x_NHW: np.ndarray, probabilities_NC: np.ndarray, columns: int,
                path: pathlib.Path) -> None:
    """Writes the samples (N, H, W) in [0, 1] as a grid, ink dark as the digits are usually drawn,
    with the judge's predicted class and its probability (N, C) under each tile."""
    x_NHW = np.asarray(x_NHW, np.float32)
    _, height, width = x_NHW.shape
    rows = len(x_NHW) // columns
    canvas = tile(1.0 - x_NHW, columns, fill=1.0)
    fig, ax = outputs.figure(size=(0.9 * columns, 1.1 * rows + 0.3))
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    for index, probability_C in enumerate(np.asarray(probabilities_NC)):
        top = index // columns * (height + LABEL_BAND)
        left = index % columns * (width + COLUMN_GAP)
        ax.text(left + (width - 1) / 2, top + height - 0.2,
                f"{probability_C.argmax()}: {probability_C.max():.2f}", ha="center", va="top",
                fontsize=8)
    ax.set_axis_off()
    ax.set_title("generated samples, fixed latents (judge's class: confidence)")
    outputs.save_figure(fig, path)

"""Mini-batches that are a pure function of (seed, epoch, index), so a run resumes on the same batch."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from dlx.errors import DlxError


class EpochBatcher:
    """Shuffled fixed-size train batches; epoch `e` uses `permutation(seed, e)`, the remainder is dropped.

    The position `{"epoch", "index"}` is saved in every checkpoint and restored with `restore`.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int):
        self.arrays = arrays
        self.size = len(next(iter(arrays.values())))
        if batch_size > self.size:
            raise DlxError(f"train.batch_size={batch_size} exceeds the {self.size} training examples")
        self.batch_size = batch_size
        self.seed = seed
        self.batches_per_epoch = self.size // batch_size
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._permutation(self.epoch)

    def __iter__(self) -> "EpochBatcher":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.index == self.batches_per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self._permutation(self.epoch)
        rows = self._order[self.index * self.batch_size:(self.index + 1) * self.batch_size]
        self.index += 1
        return {name: array[rows] for name, array in self.arrays.items()}


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int,
                 multiple_of: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order; the last batch is zero-padded and `mask` marks real rows.

    Batch sizes are rounded up to `multiple_of` (the device count) so every batch shards evenly.
    """
    size = len(next(iter(arrays.values())))
    batch_size = -(-min(batch_size, size) // multiple_of) * multiple_of
    for start in range(0, size, batch_size):
        batch = {name: array[start:start + batch_size] for name, array in arrays.items()}
        real = len(next(iter(batch.values())))
        pad = batch_size - real
        if pad:
            batch = {name: np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)])
                     for name, a in batch.items()}
        batch["mask"] = np.arange(batch_size) < real
        yield batch

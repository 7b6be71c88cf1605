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


class BalancedBatcher(EpochBatcher):
    """Class-balanced train batches: every batch holds batch_size // C rows of each class (the
    remainder goes to random classes), each class cycling through fresh permutations of its rows,
    so rare classes are oversampled. Epoch `e`'s order is a function of (seed, e) only, so
    `state`/`restore` resume on the same batch; an epoch is `size // batch_size` batches."""

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int,
                 num_classes: int, label_key: str = "y"):
        labels_N = arrays.get(label_key)
        if labels_N is None or labels_N.ndim != 1:
            raise DlxError(f"data.sampling='balanced' needs 1-D integer labels "
                           f"{label_key!r} in the train split")
        self.rows_by_class = [np.flatnonzero(labels_N == c) for c in range(num_classes)]
        missing = [c for c, rows in enumerate(self.rows_by_class) if not len(rows)]
        if missing:
            raise DlxError(f"data.sampling='balanced': class {missing[0]} has no train examples")
        super().__init__(arrays, batch_size, seed)

    def _permutation(self, epoch: int) -> np.ndarray:
        """Row indices of epoch `epoch`, batch after batch (length batches_per_epoch * B)."""
        rng = np.random.default_rng([self.seed, epoch])
        num_classes, size = len(self.rows_by_class), self.batches_per_epoch * self.batch_size
        slots = []
        for _ in range(self.batches_per_epoch):
            extra = rng.choice(num_classes, self.batch_size % num_classes, replace=False)
            classes_B = np.concatenate([np.repeat(np.arange(num_classes),
                                                  self.batch_size // num_classes), extra])
            slots.append(rng.permutation(classes_B))
        classes_N = np.concatenate(slots)[:size]
        order_N = np.empty(size, np.int64)
        for c, rows in enumerate(self.rows_by_class):
            where = np.flatnonzero(classes_N == c)
            cycles = -(-len(where) // len(rows))
            drawn = np.concatenate([rng.permutation(rows) for _ in range(cycles)] or [rows[:0]])
            order_N[where] = drawn[:len(where)]
        return order_N


SAMPLINGS = ("uniform", "balanced")


def make_batcher(arrays: dict[str, np.ndarray], batch_size: int, seed: int, sampling: str,
                 num_classes: int) -> EpochBatcher:
    """The train batcher for `data.sampling`: uniform (EpochBatcher), balanced (BalancedBatcher)."""
    if sampling not in SAMPLINGS:
        raise DlxError(f"data.sampling={sampling!r} is not known; expected one of: "
                       f"{', '.join(SAMPLINGS)}")
    if sampling == "balanced":
        return BalancedBatcher(arrays, batch_size, seed, num_classes)
    return EpochBatcher(arrays, batch_size, seed)


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

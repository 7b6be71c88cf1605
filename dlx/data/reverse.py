"""Sequence reversal, a sequence-to-sequence task generated on the fly (`data.name="reverse"`).

A source is `length` random symbols (ids `FIRST_SYMBOL` … `FIRST_SYMBOL + num_symbols - 1`),
length uniform in [`min_length`, `max_length`]; its target is the same symbols in reverse order.
Every split is right-padded with `PAD` to S = `max_length` source steps and T = S + 1 target
steps; each field, for N sequences:

    src          int32 (N, S)  the symbols, then PAD
    src_lengths  int32 (N,)    real source steps
    tgt_in       int32 (N, T)  BOS, the reversed symbols, then PAD (the decoder's inputs)
    tgt_out      int32 (N, T)  the reversed symbols, EOS, then PAD (what each step predicts)
    tgt_lengths  int32 (N,)    real target steps, `src_lengths + 1` (the EOS included)

All sequences of a run are distinct: the test split is drawn first and no training sequence
repeats one of it (or another training one), so held-out accuracy is on unseen sequences. The
splits depend only on the data keys (`data.seed` among them), not on the run's `seed`.
"""

from __future__ import annotations

import ml_collections
import numpy as np

import dlx.data as data_lib
from dlx.errors import DlxError

PAD, BOS, EOS = 0, 1, 2
FIRST_SYMBOL = 3  # Symbol k has id FIRST_SYMBOL + k.
SPECIAL_IDS = {"pad": PAD, "bos": BOS, "eos": EOS}


def _check(num_symbols: int, min_length: int, max_length: int, num_sequences: int) -> None:
    """One-line DlxError unless the settings can yield `num_sequences` distinct sequences."""
    if num_symbols < 2 or not 1 <= min_length <= max_length:
        raise DlxError(f"reverse data needs num_symbols >= 2 and 1 <= min_length <= max_length; "
                       f"got num_symbols={num_symbols}, min_length={min_length}, "
                       f"max_length={max_length}")
    possible = sum(float(num_symbols) ** n for n in range(min_length, max_length + 1))
    if num_sequences > possible / 2:
        raise DlxError(f"reverse data: {num_sequences} distinct sequences asked for, but "
                       f"lengths {min_length}-{max_length} over {num_symbols} symbols allow only "
                       f"{possible:.0f}; lower num_train + num_test or widen the lengths")


def _draw(num: int, rng: np.random.Generator, num_symbols: int, min_length: int,
          max_length: int) -> np.ndarray:
    """`num` random sources as int32 (num, max_length), PAD after each row's length."""
    lengths_N = rng.integers(min_length, max_length + 1, num)
    symbols_NS = rng.integers(FIRST_SYMBOL, FIRST_SYMBOL + num_symbols, (num, max_length))
    real_NS = np.arange(max_length)[None, :] < lengths_N[:, None]
    return np.where(real_NS, symbols_NS, PAD).astype(np.int32)


def distinct_sources(num: int, rng: np.random.Generator, num_symbols: int, min_length: int,
                     max_length: int) -> np.ndarray:
    """`num` pairwise distinct padded sources (num, max_length) int32, in order of drawing."""
    _check(num_symbols, min_length, max_length, num)
    rows_NS = np.zeros((0, max_length), np.int32)
    while len(rows_NS) < num:
        drawn = np.concatenate([rows_NS, _draw(num - len(rows_NS) + 16, rng, num_symbols,
                                               min_length, max_length)])
        _, first = np.unique(drawn, axis=0, return_index=True)
        rows_NS = drawn[np.sort(first)]  # Keeps the earlier copy; padding makes rows unique keys.
    return rows_NS[:num]


def pairs(src_NS: np.ndarray) -> dict[str, np.ndarray]:
    """Padded sources (N, S) -> the split's fields (module docstring): targets are reversals."""
    num, steps = src_NS.shape
    lengths_N = (src_NS != PAD).sum(axis=1).astype(np.int32)
    s_1S = np.arange(steps)[None, :]
    # Target step t (< length) holds source step length - 1 - t.
    index_NS = np.clip(lengths_N[:, None] - 1 - s_1S, 0, steps - 1)
    reversed_NS = np.where(s_1S < lengths_N[:, None],
                           np.take_along_axis(src_NS, index_NS, axis=1), PAD)
    padded_NT = np.concatenate([reversed_NS, np.full((num, 1), PAD)], axis=1)
    tgt_out_NT = padded_NT.copy()
    tgt_out_NT[np.arange(num), lengths_N] = EOS
    tgt_in_NT = np.concatenate([np.full((num, 1), BOS), padded_NT[:, :-1]], axis=1)
    return {"src": src_NS.astype(np.int32), "src_lengths": lengths_N,
            "tgt_in": tgt_in_NT.astype(np.int32), "tgt_out": tgt_out_NT.astype(np.int32),
            "tgt_lengths": lengths_N + 1}


def load(data_config: ml_collections.ConfigDict) -> data_lib.Splits:
    """`data.num_train` and `data.num_test` distinct reversal pairs drawn with `data.seed`; the
    vocabulary (`num_classes`) is PAD, BOS, EOS and `data.num_symbols` symbols."""
    rng = np.random.default_rng(data_config.seed)
    sources_NS = distinct_sources(data_config.num_test + data_config.num_train, rng,
                                  data_config.num_symbols, data_config.min_length,
                                  data_config.max_length)
    vocab_size = FIRST_SYMBOL + data_config.num_symbols
    return data_lib.Splits(train=pairs(sources_NS[data_config.num_test:]),
                           test=pairs(sources_NS[:data_config.num_test]), num_classes=vocab_size,
                           metadata={"vocab_size": vocab_size, "seq2seq_ids": dict(SPECIAL_IDS)})

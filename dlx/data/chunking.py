"""Long texts for BERT: overlapping windows of at most `window` tokens, and pooling back.

A BERT's position table has `max_position_embeddings` rows, so `encode_classification` truncates
a longer text to its first `seq_len - 2` tokens. `sliding_windows` keeps all of it instead: each
document's token ids are cut into pieces of `window - 2` ids whose starts are `stride` apart (the
last piece ends at the document's end), each laid out `[CLS] piece [SEP] [PAD]...`, with the
index of its document; a document of at most `window - 2` ids gives one window, the same row
truncation gives. A classifier scores every window and `pool_windows` averages (or maxes) the
window logits of each document into one row per document.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError

POOLING = ("mean", "max")


def window_starts(length: int, piece: int, stride: int) -> list[int]:
    """Start offsets of the pieces of `piece` ids covering `length` ids, `stride` apart, the last
    one moved back to end at `length` ([0] when length <= piece)."""
    if length <= piece:
        return [0]
    starts = list(range(0, length - piece + 1, stride))
    if starts[-1] + piece < length:
        starts.append(length - piece)
    return starts


def sliding_windows(token_ids: Sequence[Sequence[int]], window: int, stride: int, cls_id: int,
                    sep_id: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each document's ids (no specials) as `[CLS] piece [SEP]` windows: ids (NW, window) int32,
    mask (NW, window) bool (real tokens) and doc (NW,) int32, the document of each window."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3:
        raise DlxError(f"window={window!r} must be an int >= 3 ([CLS], a token and [SEP])")
    piece = int(window) - 2
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) \
            or not 1 <= stride <= piece:
        raise DlxError(f"stride={stride!r} must be an int in [1, window - 2 = {piece}] so the "
                       f"windows overlap (or touch) and cover every token")
    if isinstance(token_ids, np.ndarray) and token_ids.ndim == 1:
        raise DlxError("token_ids must be a list of documents' id sequences; got one flat array "
                       "(wrap it: [ids])")
    rows, docs = [], []
    for d, ids in enumerate(token_ids):
        ids_L = np.asarray(ids, np.int32).reshape(-1)
        for start in window_starts(len(ids_L), piece, stride):
            rows.append(np.concatenate([[cls_id], ids_L[start:start + piece], [sep_id]]))
            docs.append(d)
    ids_NW = np.full((len(rows), window), pad_id, np.int32)
    mask_NW = np.zeros((len(rows), window), bool)
    for i, row in enumerate(rows):
        ids_NW[i, :len(row)] = row
        mask_NW[i, :len(row)] = True
    return ids_NW, mask_NW, np.asarray(docs, np.int32)


def pool_windows(logits_NC: jax.Array, doc_N: jax.Array, num_docs: int,
                 how: str = "mean") -> jax.Array:
    """Per-document (num_docs, C) logits: the mean or max of each document's window logits
    (N, C), `doc_N` (N,) giving each window's document (every document needs a window)."""
    if how not in POOLING:
        raise DlxError(f"how={how!r} is unknown; expected one of: {', '.join(POOLING)}")
    logits_NC = jnp.asarray(logits_NC)
    doc_N = jnp.asarray(doc_N)
    if logits_NC.ndim != 2 or doc_N.shape != logits_NC.shape[:1]:
        raise DlxError(f"pool_windows needs logits (N, C) and doc (N,); got {logits_NC.shape} "
                       f"and {doc_N.shape}")
    if how == "max":
        return jax.ops.segment_max(logits_NC, doc_N, num_segments=num_docs)
    sums_DC = jax.ops.segment_sum(logits_NC, doc_N, num_segments=num_docs)
    counts_D = jax.ops.segment_sum(jnp.ones_like(doc_N, logits_NC.dtype), doc_N,
                                   num_segments=num_docs)
    return sums_DC / jnp.maximum(counts_D, 1)[:, None]

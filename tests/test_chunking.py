"""Long texts as sliding windows: coverage, layout, agreement with truncation, and pooling."""

import numpy as np
import pytest

from dlx.data import chunking, tokenizer as tokenizer_lib
from dlx.data.tokens import encode_classification
from dlx.errors import DlxError

CLS, SEP, PAD = 1, 2, 0


def _pieces(ids_NW, mask_NW):
    """Each window's ids between [CLS] and [SEP]."""
    return [row[mask][1:-1] for row, mask in zip(ids_NW, mask_NW)]


@pytest.mark.parametrize("length,window,stride", [(23, 8, 3), (23, 8, 6), (7, 6, 1), (40, 12, 10)])
def test_windows_cover_every_token_in_order_with_specials_in_place(length, window, stride):
    doc = np.arange(100, 100 + length)
    ids_NW, mask_NW, doc_N = chunking.sliding_windows([doc], window, stride, CLS, SEP, PAD)
    assert ids_NW.shape[1] == window and ids_NW.dtype == np.int32 and (doc_N == 0).all()
    pieces = _pieces(ids_NW, mask_NW)
    starts = chunking.window_starts(length, window - 2, stride)
    covered = set()
    for piece, start in zip(pieces, starts, strict=True):
        np.testing.assert_array_equal(piece, doc[start:start + window - 2])  # contiguous, in order
        covered.update(piece.tolist())
    assert covered == set(doc.tolist())
    assert starts == sorted(starts) and starts[-1] + window - 2 == length
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))
    lengths = mask_NW.sum(axis=1)
    assert (ids_NW[:, 0] == CLS).all()
    assert (ids_NW[np.arange(len(ids_NW)), lengths - 1] == SEP).all()
    assert (ids_NW[~mask_NW] == PAD).all()
    assert (mask_NW == (np.arange(window) < lengths[:, None])).all()


def test_documents_are_tracked_and_short_ones_match_truncation():
    docs = ["the cat sat on the mat", "a dog ran far away from the cat and the mat today " * 3, ""]
    tokenizer = tokenizer_lib.train(docs, vocab_size=80, min_frequency=1)
    ids = tokenizer_lib.special_ids(tokenizer)
    encoded = tokenizer_lib.encode(tokenizer, docs)
    assert len(encoded[0]) <= 10 and len(encoded[1]) > 20
    ids_NW, mask_NW, doc_N = chunking.sliding_windows(encoded, 12, 5, ids.cls, ids.sep, ids.pad)
    truncated = encode_classification(tokenizer, docs, 12)
    np.testing.assert_array_equal(ids_NW[doc_N == 0], truncated[:1])
    np.testing.assert_array_equal(ids_NW[doc_N == 2], truncated[2:])  # empty: [CLS] [SEP]
    np.testing.assert_array_equal(ids_NW[doc_N == 1][0], truncated[1])  # first window = truncation
    assert (np.diff(doc_N) >= 0).all() and (doc_N == 1).sum() == len(
        chunking.window_starts(len(encoded[1]), 10, 5))


def test_pool_windows_mean_and_max_golden_values():
    logits_NC = np.array([[1.0, -2.0], [3.0, 0.0], [5.0, 4.0], [-1.0, 2.0]], np.float32)
    doc_N = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(chunking.pool_windows(logits_NC, doc_N, 2, "mean"),
                               [[2.0, -1.0], [2.0, 3.0]])
    np.testing.assert_allclose(chunking.pool_windows(logits_NC, doc_N, 2, "max"),
                               [[3.0, 0.0], [5.0, 4.0]])
    np.testing.assert_allclose(chunking.pool_windows(logits_NC[:1], doc_N[:1], 1), logits_NC[:1])


@pytest.mark.parametrize("call,message", [
    (lambda: chunking.sliding_windows([[5]], 8, 8, CLS, SEP, PAD), r"stride=8 must be an int in "
     r"\[1, window - 2 = 6\]"),
    (lambda: chunking.sliding_windows([[5]], 8, 0, CLS, SEP, PAD), r"stride=0 must be"),
    (lambda: chunking.sliding_windows([[5]], 2, 1, CLS, SEP, PAD), r"window=2 must be an int >= 3"),
    (lambda: chunking.sliding_windows(np.arange(5), 8, 2, CLS, SEP, PAD), "one flat array"),
    (lambda: chunking.pool_windows(np.zeros((2, 3)), np.zeros(2, int), 1, "sum"),
     r"how='sum' is unknown; expected one of: mean, max"),
    (lambda: chunking.pool_windows(np.zeros((2, 3)), np.zeros(3, int), 1), r"logits \(N, C\)"),
])
def test_bad_settings_are_one_line_errors(call, message):
    with pytest.raises(DlxError, match=message) as error:
        call()
    assert "\n" not in str(error.value)

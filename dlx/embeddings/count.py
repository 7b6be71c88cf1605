"""Count-based word vectors: a window co-occurrence matrix, positive PMI, and truncated SVD.

The classic pipeline (Levy, Goldberg & Dagan 2015, "Improving Distributional Similarity with
Lessons Learned from Word Embeddings"): count how often each pair of words appears within a
window, reweight the counts with positive pointwise mutual information (with context
distribution smoothing), and factorise the result with a truncated SVD.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from dlx.embeddings import vocab as vocab_lib
from dlx.errors import DlxError

WEIGHTINGS = ("uniform", "harmonic")
# Tokens gathered before a partial matrix is built; bounds memory on long streams.
_CHUNK_TOKENS = 1 << 20


def _validated_ids(ids: np.ndarray, vocab_size: int, index: int) -> np.ndarray:
    ids_T = np.asarray(ids)
    if ids_T.ndim != 1 or not (ids_T.size == 0 or np.issubdtype(ids_T.dtype, np.integer)):
        raise DlxError(f"sentence {index} has shape {ids_T.shape} and dtype {ids_T.dtype}; "
                       f"expected a 1-D array of integer word ids")
    if ids_T.size and (ids_T.min() < 0 or ids_T.max() >= vocab_size):
        raise DlxError(f"sentence {index} has word ids in [{ids_T.min()}, {ids_T.max()}]; "
                       f"expected ids in [0, {vocab_size})")
    return ids_T.astype(np.int64)


def _window_counts(ids_T: np.ndarray, sentence_T: np.ndarray, vocab_size: int, window: int,
                   harmonic: bool) -> scipy.sparse.csr_matrix:
    """Counts of (word, context) pairs in a token stream whose sentences `sentence_T` labels."""
    rows, cols, weights = [], [], []
    for distance in range(1, min(window, len(ids_T) - 1) + 1):
        same_sentence = sentence_T[:-distance] == sentence_T[distance:]
        rows.append(ids_T[:-distance][same_sentence])
        cols.append(ids_T[distance:][same_sentence])
        weights.append(np.full(len(rows[-1]), 1.0 / distance if harmonic else 1.0))
    if not rows:
        return scipy.sparse.csr_matrix((vocab_size, vocab_size))
    # COO -> CSR sums the duplicate (row, col) entries; adding the transpose counts each pair in
    # both orders and keeps the result exactly symmetric.
    forward = scipy.sparse.coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(vocab_size, vocab_size)).tocsr()
    return (forward + forward.T).tocsr()


def cooccurrence(id_sentences: Iterable[np.ndarray], vocab_size: int, window: int = 5,
                 weighting: str = "uniform") -> scipy.sparse.csr_matrix:
    """(V, V) float64 symmetric counts: entry (u, v) sums, over token pairs at distance 1..window
    in one sentence with words u and v, 1 (`uniform`) or 1/distance (`harmonic`, as GloVe)."""
    if weighting not in WEIGHTINGS:
        raise DlxError(f"weighting={weighting!r} is not known; expected one of: "
                       f"{', '.join(WEIGHTINGS)}")
    if window < 1:
        raise DlxError(f"window={window} must be a positive number of positions")
    if vocab_size < 1:
        raise DlxError(f"vocab_size={vocab_size} must be positive")
    total = scipy.sparse.csr_matrix((vocab_size, vocab_size))
    chunk, labels, tokens = [], [], 0
    for index, ids in enumerate(id_sentences):
        ids_T = _validated_ids(ids, vocab_size, index)
        chunk.append(ids_T)
        labels.append(np.full(len(ids_T), index))
        tokens += len(ids_T)
        if tokens >= _CHUNK_TOKENS:
            total += _window_counts(np.concatenate(chunk), np.concatenate(labels), vocab_size,
                                    window, weighting == "harmonic")
            chunk, labels, tokens = [], [], 0
    if chunk:
        total += _window_counts(np.concatenate(chunk), np.concatenate(labels), vocab_size,
                                window, weighting == "harmonic")
    return total.tocsr()


def ppmi(counts: scipy.sparse.spmatrix, alpha: float = 0.75,
         shift: float = 0.0) -> scipy.sparse.csr_matrix:
    """(V, C) float64 max(PMI - shift, 0) of (V, C) counts, the context distribution raised to
    `alpha` (Levy et al. 2015); `shift` = log k gives the shifted PPMI of SGNS with k negatives."""
    if alpha <= 0:
        raise DlxError(f"alpha={alpha} must be positive (0.75 smooths, 1 gives plain PMI)")
    counts = scipy.sparse.csr_matrix(counts, dtype=np.float64)
    if counts.nnz and counts.data.min() < 0:
        raise DlxError(f"counts has a negative entry ({counts.data.min()}); expected counts >= 0")
    counts.eliminate_zeros()
    if counts.nnz == 0:
        raise DlxError("counts is all zeros; PMI needs at least one co-occurrence")
    row_sums_V = np.asarray(counts.sum(axis=1)).ravel()
    smoothed_C = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    coo = counts.tocoo()
    # PMI = log(p(w, c) / (p(w) p_alpha(c))) where the count is nonzero (elsewhere it is -inf and
    # clips to 0); the corpus total cancels out.
    pmi = (np.log(coo.data) + np.log(smoothed_C.sum()) - np.log(row_sums_V[coo.row])
           - np.log(smoothed_C[coo.col]))
    values = np.maximum(pmi - shift, 0.0)
    result = scipy.sparse.csr_matrix((values, (coo.row, coo.col)), shape=counts.shape)
    result.eliminate_zeros()
    return result


def svd_vectors(matrix: scipy.sparse.spmatrix | np.ndarray, dim: int, eig_power: float = 0.5,
                seed: int = 0) -> np.ndarray:
    """(V, dim) float32 U_k * S_k**eig_power of the rank-`dim` truncated SVD of a (V, C) matrix,
    largest singular values first; each column's largest-magnitude entry is made positive."""
    rows, cols = matrix.shape
    if not 1 <= dim < min(rows, cols):
        raise DlxError(f"dim={dim} must be in [1, {min(rows, cols)}) for a {rows}x{cols} "
                       f"matrix (ARPACK computes fewer singular values than the smaller side)")
    matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
    # A fixed start vector makes ARPACK deterministic.
    v0_C = np.random.default_rng(seed).uniform(-1.0, 1.0, size=min(rows, cols))
    u_VK, s_K, _ = scipy.sparse.linalg.svds(matrix, k=dim, v0=v0_C)
    order = np.argsort(-s_K, kind="stable")
    u_VK, s_K = u_VK[:, order], s_K[order]
    largest_K = np.abs(u_VK).argmax(axis=0)
    signs_K = np.sign(u_VK[largest_K, np.arange(dim)])
    signs_K[signs_K == 0] = 1.0
    return (u_VK * signs_K * s_K ** eig_power).astype(np.float32)


def train(sentences: Sequence[Sequence[str]], *, dim: int = 100, window: int = 5,
          min_count: int = 5, max_vocab: int = 0, weighting: str = "uniform",
          cds: float = 0.75, shift: float = 0.0, eig_power: float = 0.5,
          seed: int = 0) -> tuple[vocab_lib.Vocab, np.ndarray]:
    """(vocab, vectors_VD float32): PPMI-SVD vectors of the words seen min_count times, from the
    window co-occurrence counts of tokenized `sentences` (`cds`: the context smoothing alpha)."""
    vocab = vocab_lib.Vocab.build(sentences, min_count=min_count, max_vocab=max_vocab)
    if len(vocab) < 2:
        raise DlxError(f"{len(vocab)} word(s) occur min_count={min_count} times; PPMI-SVD needs "
                       f"more (lower min_count or give more text)")
    counts = cooccurrence((vocab.encode(sentence) for sentence in sentences), len(vocab), window,
                          weighting)
    return vocab, svd_vectors(ppmi(counts, cds, shift), dim, eig_power, seed)

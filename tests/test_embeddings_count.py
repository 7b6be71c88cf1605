"""Count-based vectors: window co-occurrence, PPMI and SVD against direct NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest

from dlx.embeddings import count
from dlx.embeddings.count import cooccurrence, ppmi, svd_vectors
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError

SENTENCES = [np.array([0, 1, 2, 1, 3, 0, 0]), np.array([4]), np.array([], dtype=np.int64),
             np.array([2, 4, 2, 3]), np.array([5, 1])]
VOCAB = 6


def brute_force(sentences: list[np.ndarray], window: int, harmonic: bool) -> np.ndarray:
    counts_VV = np.zeros((VOCAB, VOCAB))
    for ids in sentences:
        for i in range(len(ids)):
            for j in range(len(ids)):
                distance = abs(i - j)
                if 0 < distance <= window:
                    counts_VV[ids[i], ids[j]] += 1.0 / distance if harmonic else 1.0
    return counts_VV


@pytest.mark.parametrize("weighting", ["uniform", "harmonic"])
@pytest.mark.parametrize("window", [1, 2, 3, 10])
def test_cooccurrence_equals_brute_force(weighting: str, window: int) -> None:
    counts = cooccurrence(SENTENCES, VOCAB, window=window, weighting=weighting)
    assert counts.shape == (VOCAB, VOCAB) and counts.dtype == np.float64
    expected_VV = brute_force(SENTENCES, window, weighting == "harmonic")
    np.testing.assert_allclose(counts.toarray(), expected_VV, rtol=1e-12)
    np.testing.assert_array_equal(counts.toarray(), counts.toarray().T)


def test_cooccurrence_streams_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flushing partial matrices every few tokens never pairs words across sentences."""
    whole = cooccurrence(iter(SENTENCES), VOCAB, window=3, weighting="harmonic").toarray()
    monkeypatch.setattr(count, "_CHUNK_TOKENS", 3)
    chunked = cooccurrence(iter(SENTENCES), VOCAB, window=3, weighting="harmonic").toarray()
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weighting="linear"), "weighting='linear' is not known"),
    (dict(window=0), "window=0 must be a positive"),
    (dict(vocab_size=5), r"sentence 4 has word ids in \[1, 5\]; expected ids in \[0, 5\)"),
])
def test_cooccurrence_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = dict(vocab_size=VOCAB, window=2, weighting="uniform") | kwargs
    with pytest.raises(DlxError, match=message):
        cooccurrence(SENTENCES, **arguments)


def test_cooccurrence_rejects_float_ids() -> None:
    with pytest.raises(DlxError, match="sentence 1 .* expected a 1-D array of integer word ids"):
        cooccurrence([np.array([1, 2]), np.array([0.5])], VOCAB)


def dense_ppmi(counts_VC: np.ndarray, alpha: float, shift: float) -> np.ndarray:
    """The textbook formula on a dense matrix, with explicit probabilities."""
    total = counts_VC.sum()
    p_wc = counts_VC / total
    p_w = counts_VC.sum(axis=1, keepdims=True) / total
    smoothed = counts_VC.sum(axis=0, keepdims=True) ** alpha
    p_c = smoothed / smoothed.sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(p_wc / (p_w * p_c))
    return np.maximum(pmi - shift, 0.0)


@pytest.mark.parametrize("alpha, shift", [(0.75, 0.0), (1.0, 0.0), (0.75, np.log(2.0))])
def test_ppmi_equals_dense_formula(alpha: float, shift: float) -> None:
    counts = cooccurrence(SENTENCES, VOCAB, window=2)
    result = ppmi(counts, alpha=alpha, shift=shift)
    np.testing.assert_allclose(result.toarray(), dense_ppmi(counts.toarray(), alpha, shift),
                               rtol=1e-12, atol=1e-12)
    assert 0 < result.nnz == np.count_nonzero(result.toarray()), "explicit zeros were kept"


def test_ppmi_rejects_empty_counts() -> None:
    with pytest.raises(DlxError, match="counts is all zeros"):
        ppmi(np.zeros((3, 3)))


def test_svd_reconstructs_a_low_rank_matrix() -> None:
    rng = np.random.default_rng(0)
    factors_VK = rng.normal(size=(40, 3))
    symmetric_VV = factors_VK @ factors_VK.T  # PSD of rank 3: (U S^0.5)(U S^0.5)^T is itself
    vectors_VK = svd_vectors(symmetric_VV, 3, eig_power=0.5)
    assert vectors_VK.shape == (40, 3) and vectors_VK.dtype == np.float32
    np.testing.assert_allclose(vectors_VK @ vectors_VK.T, symmetric_VV, atol=1e-4, rtol=1e-4)
    rectangular_VC = factors_VK @ rng.normal(size=(3, 25))
    vectors_VK = svd_vectors(rectangular_VC, 3, eig_power=1.0).astype(np.float64)
    np.testing.assert_allclose(vectors_VK @ vectors_VK.T, rectangular_VC @ rectangular_VC.T,
                               atol=1e-3, rtol=1e-4)
    norms_K = np.linalg.norm(vectors_VK, axis=0)
    assert np.all(np.diff(norms_K) < 0), "singular values must come largest first"
    largest_K = vectors_VK[np.abs(vectors_VK).argmax(axis=0), np.arange(3)]
    assert np.all(largest_K > 0), "each column's largest entry must be positive"
    np.testing.assert_array_equal(svd_vectors(rectangular_VC, 3, eig_power=1.0, seed=0),
                                  svd_vectors(rectangular_VC, 3, eig_power=1.0, seed=0))


def test_svd_rejects_a_dimension_too_large() -> None:
    with pytest.raises(DlxError, match=r"dim=5 must be in \[1, 5\) for a 5x8 matrix"):
        svd_vectors(np.ones((5, 8)), 5)


def test_words_of_one_topic_are_nearer() -> None:
    """On a corpus of two disjoint topics, PPMI + SVD vectors place each word nearest its own."""
    topics = [["cat", "dog", "pet", "fur", "paw", "vet"],
              ["stock", "market", "price", "trade", "bank", "share"]]
    words = topics[0] + topics[1]
    rng = np.random.default_rng(0)
    sentences = [rng.choice(6, size=8) + 6 * (i % 2) for i in range(400)]
    counts = cooccurrence(sentences, len(words), window=3)
    kv = KeyedVectors(words, svd_vectors(ppmi(counts), dim=4))
    for topic in topics:
        for word in topic:
            nearest, _ = kv.most_similar(word, topn=1)[0]
            assert nearest in topic, f"{word} is nearest {nearest}"
    within = np.mean([kv.similarity(a, b) for t in topics for a in t for b in t if a != b])
    across = np.mean([kv.similarity(a, b) for a in topics[0] for b in topics[1]])
    assert within > across + 0.5, (within, across)

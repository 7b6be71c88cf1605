"""Word Mover's Distance: exact equals gensim's `wmdistance`; Sinkhorn approaches exact."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlx.embeddings.vectors import KeyedVectors
from dlx.embeddings.wmd import pad_documents, wmd_exact, wmd_sinkhorn
from dlx.errors import DlxError

pytest.importorskip("ot")


@pytest.fixture(scope="module")
def lee() -> tuple[KeyedVectors, list[list[str]]]:
    """gensim's fastText vectors trained on the Lee corpus (1,762 words, 10 dims) and the
    first 20 Lee documents, lower-cased \\w+ tokens, cut to 60 tokens to keep Sinkhorn quick."""
    utils = pytest.importorskip("gensim.test.utils")
    kv = KeyedVectors.load_word2vec_format(utils.datapath("lee_fasttext.vec"))
    with open(utils.datapath("lee_background.cor"), encoding="utf-8") as lines:
        documents = [re.findall(r"\w+", line.lower())[:60] for _, line in zip(range(20), lines)]
    return kv, documents


def test_exact_equals_gensim(lee: tuple) -> None:
    from gensim.models import KeyedVectors as GensimKeyedVectors
    kv, documents = lee
    theirs = GensimKeyedVectors(kv.vector_size)
    theirs.add_vectors(kv.words, kv.vectors_VD)
    pairs = list(zip(documents[0::2], documents[1::2]))
    pairs += [(["fire", "fire", "the", "unknownword"], ["bushfire", "the", "the", "police"]),
              (documents[0], documents[0][::-1] + ["zzz"]), (["fire"], documents[3])]
    for norm in (True, False):
        ours_P = [wmd_exact(kv, a, b, norm=norm) for a, b in pairs]
        theirs_P = [theirs.wmdistance(a, b, norm=norm) for a, b in pairs]
        np.testing.assert_allclose(ours_P, theirs_P, rtol=1e-6, atol=1e-9)
        assert min(ours_P[:-2]) > 0.1
    assert wmd_exact(kv, documents[0], documents[0][::-1]) == pytest.approx(0.0, abs=1e-9)
    assert wmd_exact(kv, ["fire", "fire"], ["fire"]) == 0.0
    assert wmd_exact(kv, ["unknownword"], documents[0]) == float("inf")


def test_pad_documents(lee: tuple) -> None:
    kv, _ = lee
    rows_BL, weights_BL = pad_documents(kv, [["fire", "the", "fire", "zzz"], [], ["police"]])
    assert rows_BL.shape == weights_BL.shape == (3, 2)
    assert rows_BL.dtype == np.int32 and weights_BL.dtype == np.float32
    by_word = {kv.words[row]: weight for row, weight in zip(rows_BL[0], weights_BL[0])}
    assert by_word == {"fire": pytest.approx(2 / 3), "the": pytest.approx(1 / 3)}
    np.testing.assert_array_equal(weights_BL[1], [0, 0])
    assert kv.words[rows_BL[2, 0]] == "police" and weights_BL[2].tolist() == [1.0, 0.0]
    with pytest.raises(DlxError, match="length=1 is shorter than a document with 2 distinct"):
        pad_documents(kv, [["fire", "the"]], length=1)


def test_sinkhorn_approaches_exact_as_epsilon_shrinks(lee: tuple) -> None:
    kv, documents = lee
    docs_a, docs_b = documents[0:16:2], documents[1:16:2]
    exact_P = np.array([wmd_exact(kv, a, b) for a, b in zip(docs_a, docs_b)])
    errors = {}
    for epsilon in (0.5, 0.1, 0.03, 0.01):
        sinkhorn_P = wmd_sinkhorn(kv, docs_a, docs_b, epsilon=epsilon)
        errors[epsilon] = np.abs(sinkhorn_P - exact_P) / exact_P
    assert errors[0.01].max() < 0.02, errors[0.01]
    means = [errors[epsilon].mean() for epsilon in (0.5, 0.1, 0.03, 0.01)]
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert means[0] > 0.2, "at epsilon=0.5 the blurred plan should cost much more"


def test_sinkhorn_far_below_float32_underflow_and_either_way_round(lee: tuple) -> None:
    """exp(-C/eps) is 0 in float32 once C > 87 eps: at eps = 0.002 most of the kernel of unit
    vectors (costs up to ~1.5) underflows unless the scalings are absorbed into it stage by
    stage. Raw vectors (norms up to 3.7) start the stages from their own scale. Giving each
    pair the other way round changes nothing."""
    kv, documents = lee
    docs_a, docs_b = documents[0:16:2], documents[1:16:2]
    for epsilon, norm in ((0.002, True), (0.01, False)):
        exact_P = np.array([wmd_exact(kv, a, b, norm=norm) for a, b in zip(docs_a, docs_b)])
        sinkhorn_P = wmd_sinkhorn(kv, docs_a, docs_b, epsilon=epsilon, norm=norm)
        assert np.all(np.abs(sinkhorn_P - exact_P) < 0.02 * exact_P), (sinkhorn_P, exact_P)
        swapped_P = wmd_sinkhorn(kv, docs_b, docs_a, epsilon=epsilon, norm=norm)
        np.testing.assert_allclose(swapped_P, sinkhorn_P, rtol=1e-6)


def test_sinkhorn_of_identical_documents_is_near_zero(lee: tuple) -> None:
    kv, documents = lee
    costs_P = wmd_sinkhorn(kv, documents[:4], [d[::-1] for d in documents[:4]])
    np.testing.assert_allclose(costs_P, 0.0, atol=1e-6)


def test_a_batch_equals_one_pair_at_a_time(lee: tuple) -> None:
    """Padding and bucketing change nothing: with a fixed number of iterations the results of
    one call over all pairs equal those of one call per pair."""
    kv, documents = lee
    docs_a, docs_b = documents[:7], documents[7:14]
    docs_b[2] = docs_b[2][:5]  # very unequal sizes in one pair
    docs_a[4], docs_b[4] = docs_a[4][:12], docs_b[4][:9]  # a pair in a shorter length class
    options = dict(epsilon=0.05, iterations=200, tolerance=0.0)
    batched_P = wmd_sinkhorn(kv, docs_a, docs_b, batch_size=4, **options)
    single_P = [wmd_sinkhorn(kv, [a], [b], **options)[0] for a, b in zip(docs_a, docs_b)]
    np.testing.assert_allclose(batched_P, single_P, rtol=1e-5)


def test_sinkhorn_edge_cases(lee: tuple) -> None:
    kv, documents = lee
    costs_P = wmd_sinkhorn(kv, [["unknownword"], documents[0], []], [documents[1]] * 3)
    assert np.isinf(costs_P[0]) and np.isinf(costs_P[2]) and np.isfinite(costs_P[1])
    with pytest.raises(DlxError, match="2 documents on one side and 1 on the other"):
        wmd_sinkhorn(kv, documents[:2], documents[:1])
    with pytest.raises(DlxError, match="expected epsilon > 0"):
        wmd_sinkhorn(kv, documents[:1], documents[:1], epsilon=0.0)

"""Vocabulary, subsampling, noise distribution and dynamic-window pairs against gensim and
brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from dlx.embeddings import vocab
from dlx.errors import DlxError


@pytest.fixture(scope="module")
def lee_sentences() -> list[list[str]]:
    datapath = pytest.importorskip("gensim.test.utils").datapath
    with open(datapath("lee_background.cor"), encoding="utf-8") as lines:
        return [vocab.tokenize(line) for line in lines if line.strip()]


def test_tokenize_lowercases_and_keeps_inner_apostrophes():
    assert vocab.tokenize("Don't STOP, O'Brien's 3rd_place -- 'quoted' x2") == [
        "don't", "stop", "o'brien's", "3rd", "place", "quoted", "x2"]


def test_build_counts_sorts_by_count_then_word_and_applies_min_count():
    sentences = [["b", "a", "c", "a"], ["c", "d", "a", "b"], ["e"]]
    built = vocab.Vocab.build(sentences, min_count=2)
    assert built.words == ("a", "b", "c")
    np.testing.assert_array_equal(built.counts, [3, 2, 2])
    assert built.counts.dtype == np.int64
    assert len(built) == 3 and built.total == 7
    assert "c" in built and "d" not in built
    assert [built.index(w) for w in built.words] == [0, 1, 2]


def test_build_max_vocab_keeps_the_most_frequent():
    sentences = [list("aaaabbbccd")]
    assert vocab.Vocab.build(sentences, min_count=1, max_vocab=2).words == ("a", "b")
    assert vocab.Vocab.build(sentences, min_count=1, max_vocab=0).words == ("a", "b", "c", "d")


def test_index_of_unknown_word_is_a_dlx_key_error():
    built = vocab.Vocab.build([["a", "a"]], min_count=1)
    with pytest.raises(KeyError) as caught:
        built.index("zebra")
    assert isinstance(caught.value, DlxError)
    assert "'zebra' is not in the vocabulary of 1 words" in str(caught.value)


def test_encode_drops_unknown_tokens_and_encode_corpus_tracks_sentences():
    built = vocab.Vocab.build([["x", "y", "x"], ["y", "z"]], min_count=1)
    ids = built.encode(["z", "unknown", "x", "y"])
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [built.index("z"), built.index("x"), built.index("y")])
    ids_T, sentence_T = built.encode_corpus([["x", "q"], [], ["q", "y", "z"]])
    np.testing.assert_array_equal(ids_T, built.encode(["x", "y", "z"]))
    np.testing.assert_array_equal(sentence_T, [0, 2, 2])


def test_build_rejects_untokenized_text_and_bad_settings():
    with pytest.raises(DlxError, match="lists of tokens"):
        vocab.Vocab.build(["a whole document"])
    with pytest.raises(DlxError, match="min_count >= 1"):
        vocab.Vocab.build([["a"]], min_count=0)
    with pytest.raises(DlxError, match="one count per word"):
        vocab.Vocab(("a", "b"), np.array([3]))


@pytest.mark.parametrize("sample", [1e-3, 1e-5, 0.0, 40.0])
def test_vocab_and_keep_probabilities_match_gensim(lee_sentences, sample):
    word2vec = pytest.importorskip("gensim.models.word2vec")
    model = word2vec.Word2Vec(vector_size=4, min_count=3, sample=sample)
    model.build_vocab(lee_sentences)
    built = vocab.Vocab.build(lee_sentences, min_count=3)
    assert sorted(built.words) == sorted(model.wv.index_to_key)
    theirs = {w: model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key}
    assert dict(zip(built.words, built.counts.tolist())) == theirs
    keep = vocab.keep_probabilities(built.counts, sample)
    sample_int = np.array([model.wv.get_vecattr(w, "sample_int") for w in built.words])
    np.testing.assert_array_equal((keep * (2**32 - 1)).astype(np.uint32), sample_int)
    assert (keep < 1).any() == (sample != 0.0)


def test_negative_distribution_matches_gensim_cum_table(lee_sentences):
    word2vec = pytest.importorskip("gensim.models.word2vec")
    model = word2vec.Word2Vec(vector_size=4, min_count=3)
    model.build_vocab(lee_sentences)
    counts = np.array([model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key])
    noise = vocab.negative_distribution(counts, 0.75)
    theirs = np.diff(model.cum_table.astype(np.float64), prepend=0.0) / model.cum_table[-1]
    np.testing.assert_allclose(noise, theirs, atol=2e-9)
    np.testing.assert_allclose(vocab.negative_distribution([1, 1, 2], 1.0), [0.25, 0.25, 0.5])


def test_subsample_keeps_each_word_at_its_probability():
    rng = np.random.default_rng(0)
    keep_V = np.array([1.0, 0.5, 0.1])
    ids_T = np.repeat(np.arange(3), 100_000)
    kept_T = vocab.subsample(rng, ids_T, keep_V)
    rates = [kept_T[ids_T == i].mean() for i in range(3)]
    np.testing.assert_allclose(rates, keep_V, atol=0.01)
    assert kept_T[ids_T == 0].all()


def brute_force_pairs(sentence_T, windows_T):
    pairs = []
    for i, b in enumerate(windows_T):
        for j in range(max(0, i - b), min(len(sentence_T), i + b + 1)):
            if j != i and sentence_T[j] == sentence_T[i]:
                pairs.append((i, j))
    return pairs


def test_skipgram_pairs_equal_a_brute_force_reference():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 12, size=40)
    sentence_T = np.repeat(np.arange(40), lengths)
    windows_T = vocab.dynamic_windows(rng, sentence_T.shape[0], 4)
    assert windows_T.min() == 1 and windows_T.max() == 4
    centres_P, contexts_P = vocab.skipgram_pairs(sentence_T, windows_T, 4)
    assert list(zip(centres_P.tolist(), contexts_P.tolist())) == brute_force_pairs(
        sentence_T, windows_T)


def test_context_mask_marks_the_brute_force_pairs():
    rng = np.random.default_rng(3)
    sentence_T = np.repeat(np.arange(50), rng.integers(1, 10, size=50))
    windows_T = vocab.dynamic_windows(rng, sentence_T.shape[0], 3)
    valid_TC = vocab.context_mask(sentence_T, windows_T, 3)
    centres_P, slots_P = np.nonzero(valid_TC)
    contexts_P = centres_P + vocab.context_offsets(3)[slots_P]
    assert list(zip(centres_P.tolist(), contexts_P.tolist())) == brute_force_pairs(
        sentence_T, windows_T)


def test_centre_contexts_group_the_skipgram_pairs_by_centre():
    rng = np.random.default_rng(2)
    sentence_T = np.repeat(np.arange(30), rng.integers(1, 9, size=30))
    windows_T = vocab.dynamic_windows(rng, sentence_T.shape[0], 3)
    centres_N, contexts_NC = vocab.centre_contexts(sentence_T, windows_T, 3)
    assert contexts_NC.shape == (centres_N.shape[0], 6)
    grouped = [(c, j) for c, row in zip(centres_N.tolist(), contexts_NC.tolist())
               for j in row if j >= 0]
    assert grouped == brute_force_pairs(sentence_T, windows_T)
    assert (contexts_NC >= 0).any(axis=1).all()


def test_pair_count_matches_the_dynamic_window_expectation():
    window = 5
    lengths = np.array([1, 2, 3, 7, 40, 500])
    sentence_T = np.repeat(np.arange(lengths.shape[0]), lengths)
    # A pair at distance d survives when the centre's window b >= d: P = (window - d + 1) / window.
    expected = sum(2 * (n - d) * (window - d + 1) / window
                   for n in lengths for d in range(1, min(n, window + 1)))
    rng = np.random.default_rng(3)
    draws = [vocab.skipgram_pairs(sentence_T, vocab.dynamic_windows(rng, sentence_T.shape[0],
                                                                    window), window)[0].shape[0]
             for _ in range(400)]
    assert np.mean(draws) == pytest.approx(expected, rel=0.01)
    long_T = np.zeros(200_000, np.int32)
    pairs = vocab.skipgram_pairs(long_T, vocab.dynamic_windows(rng, 200_000, window), window)[0]
    assert pairs.shape[0] / 200_000 == pytest.approx(window + 1, rel=0.01)


def test_windows_and_subsampling_are_deterministic_for_a_seed():
    ids_T = np.arange(1000) % 7
    keep_V = np.full(7, 0.6)

    def draw(seed):
        rng = np.random.default_rng(seed)
        return vocab.subsample(rng, ids_T, keep_V), vocab.dynamic_windows(rng, 1000, 5)

    for same, again in zip(draw(4), draw(4)):
        np.testing.assert_array_equal(same, again)
    assert not np.array_equal(draw(4)[1], draw(5)[1])
    with pytest.raises(DlxError, match="window must be >= 1"):
        vocab.dynamic_windows(np.random.default_rng(0), 3, 0)

"""fastText: n-gram buckets against gensim's, the step against gensim's loop in NumPy, vectors for
unseen words, determinism, save/load, and gensim's composition of word vectors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.embeddings import fasttext, vocab, word2vec
from dlx.embeddings.vectors import KeyedVectors, OOVError
from dlx.errors import DlxError

NEGATIVE = 5
WORDS = ["the", "naïve", "日本語", "straße", "😀ok", "a", "", "unbelievably", "x" * 40]


@pytest.mark.parametrize("min_n,max_n", [(3, 6), (1, 3), (2, 5), (4, 4)])
def test_ngram_buckets_equal_gensims(min_n, max_n):
    fasttext_models = pytest.importorskip("gensim.models.fasttext")
    for bucket in (2_000_000, 97):
        buckets_H, counts_W = fasttext.ngram_buckets(WORDS, min_n, max_n, bucket)
        assert buckets_H.shape == (counts_W.sum(),)
        ours = np.split(buckets_H, np.cumsum(counts_W)[:-1])
        for word, got in zip(WORDS, ours):
            assert got.tolist() == fasttext_models.ft_ngram_hashes(word, min_n, max_n, bucket)


def test_ngram_counts_and_bad_settings():
    _, counts_W = fasttext.ngram_buckets(["ab", "", "abcd"], 3, 4, 10)
    # <ab>: <ab ab> <ab>; <>: none; <abcd>: 4 trigrams + 3 four-grams.
    assert counts_W.tolist() == [3, 0, 7]
    for settings, message in [((0, 6, 10), "min_n <= max_n"), ((4, 3, 10), "got min_n=4"),
                              ((3, 6, 0), "bucket >= 1"), ((3, 6.0, 10), "integer")]:
        with pytest.raises(DlxError, match=message):
            fasttext.check_ngrams(*settings)
    with pytest.raises(DlxError, match="min_n=5, max_n=2"):
        fasttext.train([["a", "b"]], min_n=5, max_n=2, progress=False)


# A tiny vocabulary hashed into 12 buckets (8 used): collisions, an n-gram repeated within a word
# ("aaaa": "aaa" twice) and a word without n-grams (""), whose h is its word row.
TINY = ["ab", "aaaa", "", "xyz", "a", "ba"]
MIN_N, MAX_N, BUCKET = 3, 4, 12


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gensim_update(vocab_VD, ngrams_BD, syn1, batch, sg, negative):
    """gensim's fasttext_fast_sentence_{sg,cbow}_neg per example (h from the word row and its
    n-gram rows over the n-gram count (skip-gram) or from all rows of all contexts over their
    count (CBOW); the error `work` added whole to every row, once per repeat), with word2vec's
    batching: every example reads the old tables, noise words shared by a block weighted
    negative / K and skipped when equal to the target."""
    inputs_NC, targets_NT, noise_GK, lr = batch
    buckets_H, counts_W = fasttext.ngram_buckets(TINY, MIN_N, MAX_N, BUCKET)
    ngrams_of = np.split(buckets_H, np.cumsum(counts_W)[:-1])
    vocab_VD, ngrams_BD, syn1 = (t.astype(np.float64) for t in (vocab_VD, ngrams_BD, syn1))
    new_vocab, new_ngrams, new1 = vocab_VD.copy(), ngrams_BD.copy(), syn1.copy()
    block = inputs_NC.shape[0] // noise_GK.shape[0]
    for n, (inputs, targets) in enumerate(zip(inputs_NC, targets_NT)):
        words = [w for w in inputs if w >= 0]
        neu1 = sum(vocab_VD[w] + ngrams_BD[ngrams_of[w]].sum(axis=0) for w in words)
        count = (len(ngrams_of[words[0]]) or 1) if sg else sum(1 + len(ngrams_of[w])
                                                                 for w in words)
        neu1 = neu1 / count
        work = np.zeros_like(neu1)
        for target in targets[targets >= 0]:
            terms = [(target, 1.0, 1.0)] + [(noise, 0.0, negative / noise_GK.shape[1])
                                            for noise in noise_GK[n // block] if noise != target]
            for word, label, weight in terms:
                g = (label - sigmoid(neu1 @ syn1[word])) * lr * weight
                work += g * syn1[word]
                new1[word] += g * neu1
        for w in words:
            new_vocab[w] += work
            for b in ngrams_of[w]:
                new_ngrams[b] += work
    return new_vocab, new_ngrams, new1


SG_BATCH = word2vec.Batch(
    np.array([[1], [2], [3], [1], [0], [5], [4], [0]], np.int32),
    np.array([[0, 3, -1], [1, -1, -1], [4, 5, 2], [2, 1, 0], [3, -1, -1], [1, 4, -1],
              [0, -1, -1], [-1, -1, -1]], np.int32),
    np.array([[2, 5, 1], [0, 4, 3]], np.int32), np.float32(0.3))
CBOW_BATCH = word2vec.Batch(
    np.array([[1, 2, -1, 3], [0, -1, -1, -1], [4, 5, 1, 1], [2, -1, -1, -1]], np.int32),
    np.array([[0], [3], [2], [5]], np.int32),
    np.array([[1, 4], [3, 0]], np.int32), np.float32(0.2))


@pytest.mark.parametrize("batch,sg", [(SG_BATCH, True), (CBOW_BATCH, False)],
                         ids=["skip-gram", "cbow"])
def test_step_equals_gensims_loop_in_numpy(batch, sg):
    rng = np.random.default_rng(0)
    vocab_VD = rng.normal(0, 0.5, (len(TINY), 6)).astype(np.float32)
    ngrams_BD = rng.normal(0, 0.5, (BUCKET, 6)).astype(np.float32)
    syn1 = rng.normal(0, 0.5, (len(TINY), 6)).astype(np.float32)
    subwords = fasttext.Subwords.build(TINY, MIN_N, MAX_N, BUCKET)
    assert subwords.lens_V[2] == 1 and len(subwords.buckets_U) < BUCKET  # "" and an unused row
    np.testing.assert_array_equal(subwords.rows_R[subwords.starts_V], np.arange(len(TINY)))
    (expanded,) = fasttext.expand(batch, subwords, 256, sg)
    table = np.concatenate([vocab_VD, ngrams_BD[subwords.buckets_U]])
    new_table, new1 = fasttext.subword_step(jnp.asarray(table), jnp.asarray(syn1), expanded,
                                            negative=NEGATIVE)
    want_vocab, want_ngrams, want1 = gensim_update(vocab_VD, ngrams_BD, syn1, batch, sg,
                                                   NEGATIVE)
    np.testing.assert_allclose(new_table[:len(TINY)], want_vocab, atol=1e-5)
    np.testing.assert_allclose(new_table[len(TINY):], want_ngrams[subwords.buckets_U], atol=1e-5)
    np.testing.assert_allclose(new1, want1, atol=1e-5)
    unused = np.setdiff1d(np.arange(BUCKET), subwords.buckets_U)
    np.testing.assert_array_equal(want_ngrams[unused], ngrams_BD[unused])  # never trained
    assert not np.allclose(new_table, table) and not np.allclose(new1, syn1)


def test_each_distinct_word_is_expanded_once_and_a_step_too_big_is_halved_in_order():
    subwords = fasttext.Subwords.build(TINY, MIN_N, MAX_N, BUCKET)

    def distinct_rows(inputs):
        return int(subwords.lens_V[np.unique(inputs[inputs >= 0])].sum())

    whole, = fasttext.expand(CBOW_BATCH, subwords, 256, sg=False)
    assert (whole.rows_M >= 0).sum() == distinct_rows(CBOW_BATCH.inputs_NC) < 256
    # Word 1 is a context twice in example 2 and once in example 0: one set of rows for all.
    assert whole.words_NC[0, 0] == whole.words_NC[2, 2] == whole.words_NC[2, 3] >= 0
    capacity = max(distinct_rows(inputs) for inputs in CBOW_BATCH.inputs_NC)  # 15 of 25
    pieces = list(fasttext.expand(CBOW_BATCH, subwords, capacity, sg=False))
    live = [np.flatnonzero((piece.targets_NT >= 0).any(axis=1)).tolist() for piece in pieces]
    assert live == [[0], [1], [2, 3]]  # halved, then the first half halved again
    for piece, examples in zip(pieces, live):
        assert piece.rows_M.shape == (capacity,)
        assert (piece.rows_M >= 0).sum() == distinct_rows(CBOW_BATCH.inputs_NC[examples])
        assert (piece.words_NC[examples] >= 0).sum() == (CBOW_BATCH.inputs_NC[examples] >= 0).sum()
        np.testing.assert_array_equal(piece.scale_N, whole.scale_N)


def lee_without(word):
    """gensim's Lee corpus, tokenized, with every occurrence of `word` removed."""
    text = pytest.importorskip("dlx.data.text")
    pytest.importorskip("gensim")
    return [[w for w in vocab.tokenize(doc) if w != word] for doc in text.gensim_lee()]


LEE_SETTINGS = dict(dim=48, epochs=8, min_count=3, bucket=50_000, progress=False)


@pytest.fixture(scope="module")
def lee_vectors():
    return fasttext.train(lee_without("attacks"), seed=1, **LEE_SETTINGS)


def test_an_unseen_word_gets_a_vector_near_words_of_its_morphology(lee_vectors):
    """The issue's acceptance: "attacks" (82 times in Lee) removed on purpose, its vector from
    n-grams is non-zero and its nearest neighbours share its stem."""
    kv = lee_vectors
    assert "attacks" not in kv and "attack" in kv and "attacked" in kv
    vector_D = kv["attacks"]
    assert vector_D.shape == (48,) and np.linalg.norm(vector_D) > 0.1
    neighbours = [word for word, _ in kv.most_similar("attacks", topn=5)]
    assert sum("attack" in word for word in neighbours) >= 2, neighbours
    assert neighbours[0] == "attack"
    assert kv.similarity("attacks", "attack") > kv.similarity("attacks", "government")
    assert kv.nearest("attacks", topn=1)[0][0] == "attack"
    assert kv.doesnt_match(["attacks", "attack", "attacked", "cricket"]) == "cricket"
    with pytest.raises(OOVError, match="'attacks' is not in the vocabulary"):
        kv.get_index("attacks")
    np.testing.assert_array_equal(kv[""], np.zeros(48, np.float32))  # no n-grams at all


def test_training_is_deterministic_and_save_load_keeps_unseen_words(tmp_path, lee_vectors):
    sentences = lee_without("attacks")[:40]
    settings = dict(dim=16, epochs=2, min_count=2, bucket=5000, progress=False)
    first = fasttext.train(sentences, seed=3, **settings)
    again = fasttext.train(sentences, seed=3, **settings)
    other = fasttext.train(sentences, seed=4, **settings)
    np.testing.assert_array_equal(first.vectors_VD, again.vectors_VD)
    np.testing.assert_array_equal(first["attacks"], again["attacks"])
    assert not np.allclose(first.vectors_VD, other.vectors_VD)

    lee_vectors.save(tmp_path / "model")
    loaded = fasttext.FastTextVectors.load(tmp_path / "model")
    assert loaded.words == lee_vectors.words and repr(loaded) == repr(lee_vectors)
    np.testing.assert_array_equal(loaded.vectors_VD, lee_vectors.vectors_VD)
    np.testing.assert_array_equal(loaded["attacks"], lee_vectors["attacks"])
    assert loaded.most_similar("attacks", topn=3) == lee_vectors.most_similar("attacks", topn=3)
    lee_vectors.save_word2vec_format(tmp_path / "vectors.txt")
    text_vectors = KeyedVectors.load_word2vec_format(tmp_path / "vectors.txt")
    assert text_vectors.words == lee_vectors.words and "attacks" not in text_vectors
    with pytest.raises(DlxError, match="no such file"):
        fasttext.FastTextVectors.load(tmp_path / "nothing")


def test_vectors_compose_as_gensims_from_its_tables():
    """Given gensim's trained tables, in-vocabulary vectors are its wv.vectors and unseen words
    get its get_vector."""
    models = pytest.importorskip("gensim.models")
    sentences = lee_without("attacks")[:30]
    model = models.FastText(sentences, vector_size=12, min_count=2, epochs=1, bucket=3000,
                            min_n=2, max_n=5, workers=1, seed=0)
    wv = model.wv
    kv = fasttext.FastTextVectors.from_tables(wv.index_to_key, wv.vectors_vocab,
                                              wv.vectors_ngrams, min_n=2, max_n=5)
    np.testing.assert_allclose(kv.vectors_VD, wv.vectors, atol=1e-7)
    for word in ("attacks", "unseenword", "日本", "q"):
        assert word not in kv
        np.testing.assert_allclose(kv[word], wv[word], atol=1e-7)
    assert kv.similarity("attacks", "attack") == pytest.approx(
        wv.similarity("attacks", "attack"), abs=1e-5)


def test_training_lowers_the_loss_as_far_as_gensim_does(lee_vectors):
    """The mean negative-sampling loss per (centre, context) pair over one fixed pass of the
    corpus, of dlx's tables and of gensim's FastText trained alike (gensim's mapped into dlx's
    rows): within 2 % of each other, both far below the initial tables'."""
    models = pytest.importorskip("gensim.models")
    sentences = lee_without("attacks")
    kv = lee_vectors
    built = vocab.Vocab.build(sentences, min_count=3)
    assert list(built.words) == kv.words
    subwords = fasttext.Subwords.build(kv.words, 3, 6, LEE_SETTINGS["bucket"])
    np.testing.assert_array_equal(subwords.buckets_U, kv.buckets_U)
    ids_T, sentence_T = built.encode_corpus(sentences)
    keep_V = vocab.keep_probabilities(built.counts)
    steps = word2vec.batches(ids_T, sentence_T, keep_V, vocab.negative_distribution(built.counts),
                             np.random.default_rng(9), sg=True, window=5, epochs=1,
                             batch_words=256, block=32, shared_negatives=32, alpha=0.0,
                             min_alpha=0.0)
    capacity = fasttext.row_capacity(subwords, built.counts * keep_V, sg=True, window=5,
                                     batch_words=256)
    pieces = [piece for batch, _ in steps for piece in fasttext.expand(batch, subwords, capacity,
                                                                       sg=True)]
    pairs = sum(int((piece.targets_NT >= 0).sum()) for piece in pieces)
    loss = jax.jit(fasttext.subword_loss, static_argnames="negative")

    def mean_loss(vocab_VD, ngrams_UD, syn1_VD):
        table_XD = jnp.asarray(np.concatenate([vocab_VD, ngrams_UD]))
        return sum(float(loss(table_XD, jnp.asarray(syn1_VD), piece, negative=NEGATIVE))
                   for piece in pieces) / pairs

    model = models.FastText(sentences, sg=1, vector_size=48, epochs=8, min_count=3,
                            bucket=LEE_SETTINGS["bucket"], seed=1, workers=2)
    order = [model.wv.key_to_index[word] for word in kv.words]
    theirs = mean_loss(model.wv.vectors_vocab[order], model.wv.vectors_ngrams[kv.buckets_U],
                       model.syn1neg[order])
    ours = mean_loss(kv.vectors_vocab_VD, kv.vectors_ngrams_UD, kv.syn1_VD)
    initial = mean_loss(kv.vectors_vocab_VD * 0, kv.vectors_ngrams_UD * 0, kv.syn1_VD * 0)
    assert initial == pytest.approx(np.log(2) * (1 + NEGATIVE), rel=0.01)  # σ(0) everywhere
    assert ours < 0.7 * initial and theirs < 0.7 * initial
    assert ours == pytest.approx(theirs, rel=0.02)


def test_train_rejects_untokenized_text_and_bad_settings():
    with pytest.raises(DlxError, match="fasttext.train needs tokenized sentences"):
        fasttext.train(["a raw document"], progress=False)
    with pytest.raises(DlxError, match="window >= 1"):
        fasttext.train([["a", "b"]], window=0, progress=False)
    with pytest.raises(DlxError, match="no word occurs min_count=5 times"):
        fasttext.train([["a", "b"]], progress=False)

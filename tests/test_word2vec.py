"""word2vec: the SGNS step against word2vec.c's update in NumPy and against jax.grad, the host
batches, the schedule, determinism, and that training learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.embeddings import vocab, word2vec
from dlx.errors import DlxError

NEGATIVE = 5
update = jax.jit(word2vec.sgns_update, static_argnames="negative")
loss = jax.jit(word2vec.sgns_loss, static_argnames="negative")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def word2vec_c_update(syn0, syn1, batch, negative):
    """word2vec.c's per-pair loop (input h, target label 1, then noise words label 0, each
    weighted negative / K and skipped when equal to the target), all read from the old tables."""
    inputs_NC, targets_NT, noise_GK, lr = batch
    syn0, syn1 = syn0.astype(np.float64), syn1.astype(np.float64)
    new0, new1 = syn0.copy(), syn1.copy()
    block = inputs_NC.shape[0] // noise_GK.shape[0]
    for n, (inputs, targets) in enumerate(zip(inputs_NC, targets_NT)):
        rows = [r for r in inputs if r >= 0]
        h = syn0[rows].mean(axis=0)
        neu1e = np.zeros_like(h)
        for target in targets[targets >= 0]:
            terms = [(target, 1.0, 1.0)] + [(noise, 0.0, negative / noise_GK.shape[1])
                                            for noise in noise_GK[n // block] if noise != target]
            for word, label, weight in terms:
                g = (label - sigmoid(h @ syn1[word])) * lr * weight
                neu1e += g * syn1[word]
                new1[word] += g * h
        for r in rows:
            new0[r] += neu1e
    return new0, new1


def tiny_tables(size=12, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.5, (size, dim)).astype(np.float32),
            rng.normal(0, 0.5, (size, dim)).astype(np.float32))


# Skip-gram: one input (the centre), contexts as targets; row 3 repeats as input and target,
# noise word 4 equals a target of its block, the last example is padding (no targets).
SG_BATCH = word2vec.Batch(
    np.array([[3], [5], [3], [0]], np.int32),
    np.array([[1, 4, -1], [3, 7, 4], [9, -1, -1], [-1, -1, -1]], np.int32),
    np.array([[4, 2, 11], [6, 4, 8]], np.int32), np.float32(0.2))
# CBOW: contexts (with empty slots) as inputs, the centre as the one target.
CBOW_BATCH = word2vec.Batch(
    np.array([[1, 2, -1, 4], [3, -1, -1, -1], [2, 2, 5, 6], [7, 8, 9, 10]], np.int32),
    np.array([[0], [5], [3], [4]], np.int32),
    np.array([[5, 8], [4, 1]], np.int32), np.float32(0.1))


@pytest.mark.parametrize("batch", [SG_BATCH, CBOW_BATCH], ids=["skip-gram", "cbow"])
def test_step_equals_word2vec_c_update_in_numpy(batch):
    syn0, syn1 = tiny_tables()
    expected0, expected1 = word2vec_c_update(syn0, syn1, batch, NEGATIVE)
    new0, new1 = word2vec.sgns_step(jnp.asarray(syn0), jnp.asarray(syn1), batch,
                                    negative=NEGATIVE)
    np.testing.assert_allclose(new0, expected0, atol=1e-6)
    np.testing.assert_allclose(new1, expected1, atol=1e-6)
    assert not np.allclose(new0, syn0) and not np.allclose(new1, syn1)


def test_skipgram_step_is_minus_lr_times_the_loss_gradient():
    syn0, syn1 = (jnp.asarray(t) for t in tiny_tables(seed=1))
    grad0, grad1 = jax.jit(jax.grad(word2vec.sgns_loss, argnums=(0, 1)), static_argnums=3)(
        syn0, syn1, SG_BATCH, NEGATIVE)
    new0, new1 = update(syn0, syn1, SG_BATCH, negative=NEGATIVE)
    np.testing.assert_allclose(new0 - syn0, -SG_BATCH.lr * grad0, atol=1e-6)
    np.testing.assert_allclose(new1 - syn1, -SG_BATCH.lr * grad1, atol=1e-6)


def test_cbow_step_spreads_the_hidden_gradient_to_every_context():
    syn0, syn1 = (jnp.asarray(t) for t in tiny_tables(seed=2))
    h_ND = word2vec.hidden(syn0, CBOW_BATCH.inputs_NC)
    np.testing.assert_allclose(h_ND[0], (syn0[1] + syn0[2] + syn0[4]) / 3, atol=1e-6)
    args = (CBOW_BATCH.targets_NT, CBOW_BATCH.noise_GK, NEGATIVE)
    grad_h, grad1 = jax.jit(jax.grad(word2vec.sgns_loss_of_hidden, argnums=(0, 1)),
                            static_argnums=4)(h_ND, syn1, *args)
    expected0 = np.array(syn0)
    for inputs, g in zip(CBOW_BATCH.inputs_NC, np.asarray(grad_h)):
        for row in inputs[inputs >= 0]:
            expected0[row] -= CBOW_BATCH.lr * g
    new0, new1 = update(syn0, syn1, CBOW_BATCH, negative=NEGATIVE)
    np.testing.assert_allclose(new0, expected0, atol=1e-6)
    np.testing.assert_allclose(new1 - syn1, -CBOW_BATCH.lr * grad1, atol=1e-6)


def test_scanned_steps_equal_steps_one_by_one_and_empty_batches_change_nothing():
    syn0, syn1 = tiny_tables(seed=3)
    other = SG_BATCH._replace(lr=np.float32(0.05), noise_GK=np.array([[1, 2, 3], [4, 5, 6]],
                                                                      np.int32))
    one0, one1 = update(jnp.asarray(syn0), jnp.asarray(syn1), SG_BATCH, negative=NEGATIVE)
    one0, one1 = update(one0, one1, other, negative=NEGATIVE)
    (stacked, _), = word2vec.stacked(iter([(SG_BATCH, 3), (other, 7)]), 3)
    assert stacked.inputs_NC.shape == (3, 4, 1) and stacked.lr[2] == 0
    new0, new1 = word2vec.sgns_steps(jnp.asarray(syn0), jnp.asarray(syn1), stacked,
                                     negative=NEGATIVE)
    np.testing.assert_allclose(new0, one0, atol=1e-6)
    np.testing.assert_allclose(new1, one1, atol=1e-6)


def per_centre(batch):
    """The `Batch` of a `StreamBatch`: each centre with its valid slots' words as inputs."""
    window = batch.valid_NC.shape[1] // 2
    count = batch.valid_NC.shape[0]
    positions_NC = np.arange(count)[:, None] + window + vocab.context_offsets(window)
    inputs_NC = np.where(batch.valid_NC, batch.stream_P[positions_NC], -1).astype(np.int32)
    targets_N = np.where(batch.valid_NC.any(axis=1), batch.stream_P[window:window + count], -1)
    return word2vec.Batch(inputs_NC, targets_N[:, None].astype(np.int32), batch.noise_GK,
                          batch.lr)


# CBOW as a stretch of the stream, window 2: 8 centres (stream positions 2-9), repeated words
# (3), a centre with no context (position 7) and a stream start before the corpus (-1).
STREAM_BATCH = word2vec.StreamBatch(
    np.array([-1, 2, 3, 5, 3, 7, 1, 9, 0, 3, 11, 4], np.int32),
    np.array([[0, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 0, 0],
              [0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]], bool),
    np.array([[5, 3, 8], [3, 10, 1]], np.int32), np.float32(0.1))


def test_stream_step_equals_word2vec_c_cbow_update():
    syn0, syn1 = tiny_tables(seed=4)
    batch = per_centre(STREAM_BATCH)
    assert (batch.inputs_NC >= 0).sum() == 17 and (batch.targets_NT[:, 0] == -1).sum() == 1
    expected0, expected1 = word2vec_c_update(syn0, syn1, batch, NEGATIVE)
    new0, new1 = jax.jit(word2vec.cbow_update, static_argnames="negative")(
        jnp.asarray(syn0), jnp.asarray(syn1), STREAM_BATCH, negative=NEGATIVE)
    np.testing.assert_allclose(new0, expected0, atol=1e-6)
    np.testing.assert_allclose(new1, expected1, atol=1e-6)
    per0, per1 = update(jnp.asarray(syn0), jnp.asarray(syn1), batch, negative=NEGATIVE)
    np.testing.assert_allclose(new0, per0, atol=1e-6)
    np.testing.assert_allclose(new1, per1, atol=1e-6)


def test_learning_rate_decays_linearly_to_min_alpha():
    rates = word2vec.learning_rate(np.array([0, 250, 500, 1000, 1200]), 1000, 0.025, 1e-4)
    np.testing.assert_allclose(rates, [0.025, 0.025 - 0.0249 / 4, 0.01255, 1e-4, 1e-4])


def corpus_ids(sentences, min_count=1):
    built = vocab.Vocab.build(sentences, min_count=min_count)
    return built, *built.encode_corpus(sentences)


def all_batches(sentences, *, sg, epochs=2, seed=0, batch_words=8, block=4):
    built, ids_T, sentence_T = corpus_ids(sentences)
    return list(word2vec.batches(
        ids_T, sentence_T, np.ones(len(built)), vocab.negative_distribution(built.counts),
        np.random.default_rng(seed), sg=sg, window=2, epochs=epochs, batch_words=batch_words,
        block=block, shared_negatives=3, alpha=0.05, min_alpha=0.001)), ids_T


@pytest.mark.parametrize("sg", [True, False], ids=["skip-gram", "cbow"])
def test_batches_cover_every_centre_in_order_with_a_decaying_rate(sg):
    sentences = [["a", "b", "c", "d"], ["e"], ["b", "c", "a", "e", "d", "a", "b"]]
    steps, ids_T = all_batches(sentences, sg=sg)
    centres = np.concatenate([(b.inputs_NC[:, 0] if sg else b.targets_NT[:, 0])
                              [(b.targets_NT >= 0).any(axis=1)] for b, _ in steps])
    # Without subsampling every token with a sentence neighbour is a centre, each epoch.
    np.testing.assert_array_equal(centres, np.tile(np.delete(ids_T, 4), 2))
    words_done = [done for _, done in steps]
    assert words_done == sorted(words_done) and words_done[-1] == 2 * ids_T.shape[0]
    rates = [float(b.lr) for b, _ in steps]
    assert rates[0] == pytest.approx(0.05) and rates == sorted(rates, reverse=True)
    assert all(b.noise_GK.shape == (2, 3) and b.inputs_NC.shape[0] == 8 for b, _ in steps)
    assert all(b.inputs_NC.shape[1] == (1 if sg else 4) for b, _ in steps)


def test_stream_batches_hold_the_per_centre_cbow_batches():
    # Every token has a sentence neighbour, so both forms have the same centres; over 2 epochs
    # of 13 tokens in batches of 4 the stream is carried from one chunk's batches to the next.
    sentences = [["a", "b", "c", "d"], ["b", "c", "a", "e", "d", "a", "b"], ["e", "a"]]
    built, ids_T, sentence_T = corpus_ids(sentences)
    corpus = (ids_T, sentence_T, np.ones(len(built)), vocab.negative_distribution(built.counts))
    settings = dict(window=2, epochs=2, batch_words=4, block=2, shared_negatives=3, alpha=0.05,
                    min_alpha=0.001)
    per = list(word2vec.batches(*corpus, np.random.default_rng(0), sg=False, **settings))
    stream = list(word2vec.stream_batches(*corpus, np.random.default_rng(0), **settings))
    assert len(stream) == len(per) == 7
    for (expected, expected_done), (batch, done) in zip(per, stream):
        assert batch.stream_P.shape == (8,) and done == expected_done
        for field, expected_field in zip(per_centre(batch), expected):
            np.testing.assert_array_equal(field, expected_field)


def test_batches_need_whole_blocks():
    with pytest.raises(DlxError, match="batch_words=8 must be a multiple of block=3"):
        all_batches([["a", "b"]], sg=True, block=3)
    with pytest.raises(DlxError, match="batch_words=8 must be a multiple of block=3"):
        word2vec.train([["a", "b"]] * 5, sg=False, batch_words=8, block=3, progress=False)


def topic_corpus(seed=0, sentences=400):
    """Sentences drawn from one of two disjoint 8-word topics each."""
    rng = np.random.default_rng(seed)
    topics = [[f"{name}{i}" for i in range(8)] for name in ("sea", "code")]
    return [list(rng.choice(topics[s % 2], size=12)) for s in range(sentences)], topics


def test_loss_falls_while_training_on_a_tiny_corpus():
    sentences, _ = topic_corpus()
    steps, _ = all_batches(sentences, sg=True, epochs=1, batch_words=32, block=8)
    built = vocab.Vocab.build(sentences, min_count=1)
    syn0, syn1 = (jnp.asarray(t) for t in word2vec.init_tables(np.random.default_rng(0),
                                                               len(built), 16))

    def total_loss(syn0, syn1):
        return sum(float(loss(syn0, syn1, b, negative=NEGATIVE)) for b, _ in steps)

    before = total_loss(syn0, syn1)
    for _ in range(3):
        for batch, _ in steps:
            syn0, syn1 = word2vec.sgns_step(syn0, syn1, batch, negative=NEGATIVE)
    assert total_loss(syn0, syn1) < 0.8 * before


def nearest(vectors_VD, row, count):
    unit_VD = vectors_VD / np.linalg.norm(vectors_VD, axis=1, keepdims=True)
    cosine_V = unit_VD @ unit_VD[row]
    cosine_V[row] = -np.inf
    return np.argsort(-cosine_V)[:count]


@pytest.mark.parametrize("sg", [True, False], ids=["skip-gram", "cbow"])
def test_neighbours_stay_within_their_topic(sg):
    sentences, topics = topic_corpus()
    built, vectors_VD = word2vec.train(sentences, sg=sg, dim=16, window=3, min_count=1,
                                       sample=0, epochs=5, batch_words=64, block=16,
                                       shared_negatives=16, steps_per_call=4, progress=False)
    assert vectors_VD.shape == (16, 16) and vectors_VD.dtype == np.float32
    topic_of = {w: t for t, words in enumerate(topics) for w in words}
    for word in built.words:
        neighbours = nearest(vectors_VD, built.index(word), 5)
        assert {topic_of[built.words[n]] for n in neighbours} == {topic_of[word]}, word


def test_training_is_deterministic_for_a_seed():
    sentences, _ = topic_corpus(seed=1, sentences=60)
    settings = dict(dim=8, window=2, min_count=1, epochs=2, batch_words=32, block=16,
                    shared_negatives=16, steps_per_call=2)
    _, first = word2vec.train(sentences, seed=7, progress=True, **settings)
    _, again = word2vec.train(sentences, seed=7, progress=False, **settings)
    _, other = word2vec.train(sentences, seed=8, progress=False, **settings)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_train_rejects_untokenized_text_and_bad_settings():
    with pytest.raises(DlxError, match="tokenized sentences"):
        word2vec.train(["a raw document"], progress=False)
    with pytest.raises(DlxError, match="window >= 1"):
        word2vec.train([["a", "b"]], window=0, progress=False)
    with pytest.raises(DlxError, match="no word occurs min_count=5 times"):
        word2vec.train([["a", "b"]], progress=False)

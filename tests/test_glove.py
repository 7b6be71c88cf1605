"""GloVe: the batched AdaGrad step against glove.c's per-entry loop in NumPy and against
jax.grad, padding, shuffling, determinism, errors, and that training on real text learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse

from dlx.data import text
from dlx.embeddings import count, glove, vocab
from dlx.embeddings.vectors import KeyedVectors, OOVError
from dlx.errors import DlxError

SIZE, DIM, ETA, X_MAX = 8, 5, 0.07, 10.0
update = jax.jit(glove.update)
loss = jax.jit(glove.loss)


def glove_c_loop(params, gradsq, batch, eta, *, read_old=False):
    """glove.c's per-entry AdaGrad loop in float64 on W = params (word rows, then context rows;
    bias last). read_old: every entry reads the tables as they were before the batch and the
    steps and accumulator increments add up (the batched rule)."""
    w, g = params.astype(np.float64), gradsq.astype(np.float64)
    old_w, old_g = w.copy(), g.copy()
    size, dim = w.shape[0] // 2, w.shape[1] - 1
    cost = 0.0
    for word, context, log_x, f in zip(*batch):
        l1, l2 = word, context + size
        src_w, src_g = (old_w, old_g) if read_old else (w, g)
        diff = src_w[l1, :dim] @ src_w[l2, :dim] + src_w[l1, dim] + src_w[l2, dim] - log_x
        fdiff = f * diff
        cost += 0.5 * fdiff * diff
        fdiff *= eta
        temp1, temp2 = fdiff * src_w[l2, :dim], fdiff * src_w[l1, :dim]
        update1, update2 = temp1 / np.sqrt(src_g[l1, :dim]), temp2 / np.sqrt(src_g[l2, :dim])
        bias1, bias2 = fdiff / np.sqrt(src_g[l1, dim]), fdiff / np.sqrt(src_g[l2, dim])
        g[l1, :dim] += temp1 ** 2
        g[l2, :dim] += temp2 ** 2
        w[l1, :dim] -= update1
        w[l2, :dim] -= update2
        w[l1, dim] -= bias1
        w[l2, dim] -= bias2
        g[l1, dim] += fdiff ** 2
        g[l2, dim] += fdiff ** 2
    return w, g, cost


def make_batch(rows, cols, x):
    x = np.array(x, np.float64)
    return glove.Batch(np.array(rows, np.int32), np.array(cols, np.int32),
                       np.log(x).astype(np.float32), glove.weighting(x, X_MAX, 0.75))


# No word row and no context row repeats (word 3 and context 3 are different rows); x from
# below 1 to above x_max.
DISTINCT = make_batch([0, 3, 5, 6], [1, 3, 7, 2], [1.0, 3.5, 12.0, 0.5])
# Word 0 three times (once as the same entry twice), context 1 three times.
REPEATED = make_batch([0, 3, 0, 0, 5], [1, 1, 2, 1, 6], [2.0, 30.0, 4.0, 2.0, 0.7])


def tiny_tables(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.5, (2 * SIZE, DIM + 1)).astype(np.float32),
            rng.uniform(1, 3, (2 * SIZE, DIM + 1)).astype(np.float32))


def test_step_without_repeated_rows_equals_glove_c_loop():
    params, gradsq = tiny_tables()
    expected_w, expected_g, expected_cost = glove_c_loop(params, gradsq, DISTINCT, ETA)
    new_w, new_g, cost = update(jnp.asarray(params), jnp.asarray(gradsq), DISTINCT, ETA)
    np.testing.assert_allclose(new_w, expected_w, atol=1e-5)
    np.testing.assert_allclose(new_g, expected_g, atol=1e-5)
    np.testing.assert_allclose(cost, expected_cost, rtol=1e-5)
    assert not np.allclose(new_w, params) and not np.allclose(new_g, gradsq)


def test_step_with_repeated_rows_sums_steps_read_from_the_old_tables():
    params, gradsq = tiny_tables(seed=1)
    new_w, new_g, _ = glove.glove_step(jnp.asarray(params), jnp.asarray(gradsq), REPEATED, ETA)
    summed_w, summed_g, _ = glove_c_loop(params, gradsq, REPEATED, ETA, read_old=True)
    np.testing.assert_allclose(new_w, summed_w, atol=1e-5)
    np.testing.assert_allclose(new_g, summed_g, atol=1e-5)
    sequential_w, _, _ = glove_c_loop(params, gradsq, REPEATED, ETA)
    assert not np.allclose(new_w, sequential_w, atol=1e-4)  # glove.c's order differs here


def test_step_before_adagrad_is_minus_eta_times_the_loss_gradient():
    params = jnp.asarray(tiny_tables(seed=2)[0])
    gradient = jax.jit(jax.grad(glove.loss))(params, REPEATED)
    new_w, new_g, cost = update(params, jnp.ones_like(params), REPEATED, ETA)
    np.testing.assert_allclose(new_w - params, -ETA * gradient, atol=1e-6)
    np.testing.assert_allclose(cost, loss(params, REPEATED), rtol=1e-6)
    # Each entry's squared step adds to the accumulators: the square of the sum only where a
    # row appears once (word 3: entry 1 alone).
    np.testing.assert_allclose(new_g[3] - 1, (ETA * gradient[3]) ** 2, atol=1e-7)
    assert not np.allclose(new_g[0] - 1, (ETA * gradient[0]) ** 2, atol=1e-7)


def test_loss_is_the_weighted_least_squares_of_the_log_counts():
    params, _ = tiny_tables(seed=3)
    word, context = params[:SIZE], params[SIZE:]
    rows, cols, log_x, f = DISTINCT
    diff = (np.sum(word[rows, :-1] * context[cols, :-1], axis=1) + word[rows, -1]
            + context[cols, -1] - log_x)
    np.testing.assert_allclose(loss(params, DISTINCT), 0.5 * np.sum(f * diff ** 2), rtol=1e-5)


def test_entries_weighting_tables_and_vectors():
    counts = scipy.sparse.csr_matrix(np.array([[0, 2.5, 0], [2.5, 20.0, 0.5], [0, 0.5, 0]]))
    built = glove.entries(counts, x_max=10.0, alpha=0.75)
    np.testing.assert_array_equal(built.rows_N, [0, 1, 1, 1, 2])
    np.testing.assert_array_equal(built.cols_N, [1, 0, 1, 2, 1])
    np.testing.assert_allclose(built.log_x_N, np.log([2.5, 2.5, 20, 0.5, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(built.weight_N[:3], [0.25 ** 0.75, 0.25 ** 0.75, 1.0], rtol=1e-6)
    np.testing.assert_allclose(glove.weighting(np.array([10.0, 5.0]), 10.0, 0.75),
                               [1.0, 0.5 ** 0.75], rtol=1e-6)
    params, gradsq = glove.init_tables(np.random.default_rng(0), 3, 4)
    assert params.shape == gradsq.shape == (6, 5) and params.dtype == np.float32
    assert np.all(np.abs(params) <= 0.5 / 4) and np.all(gradsq == 1)
    np.testing.assert_array_equal(glove.vectors(params), params[:3, :4] + params[3:, :4])


def test_padding_changes_nothing():
    params, gradsq = tiny_tables(seed=4)
    pad = glove.padding(6)
    new_w, new_g, cost = update(jnp.asarray(params), jnp.asarray(gradsq), pad, ETA)
    np.testing.assert_array_equal(new_w, params)
    np.testing.assert_array_equal(new_g, gradsq)
    assert float(cost) == 0
    padded = glove.Batch(*(np.concatenate(pair) for pair in zip(REPEATED, pad)))
    alone = update(jnp.asarray(params), jnp.asarray(gradsq), REPEATED, ETA)
    with_pad = update(jnp.asarray(params), jnp.asarray(gradsq), padded, ETA)
    for a, b in zip(alone, with_pad):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_scanned_steps_equal_steps_one_by_one():
    params, gradsq = tiny_tables(seed=5)
    one_w, one_g, first = update(jnp.asarray(params), jnp.asarray(gradsq), DISTINCT, ETA)
    one_w, one_g, second = update(one_w, one_g, REPEATED._replace(
        rows_N=REPEATED.rows_N[:4], cols_N=REPEATED.cols_N[:4], log_x_N=REPEATED.log_x_N[:4],
        weight_N=REPEATED.weight_N[:4]), ETA)
    stacked = glove.Batch(*(np.stack([a, b[:4]]) for a, b in zip(DISTINCT, REPEATED)))
    new_w, new_g, cost = glove.glove_steps(jnp.asarray(params), jnp.asarray(gradsq), stacked,
                                           np.float32(ETA))
    np.testing.assert_allclose(new_w, one_w, atol=1e-6)
    np.testing.assert_allclose(new_g, one_g, atol=1e-6)
    np.testing.assert_allclose(cost, first + second, rtol=1e-6)


def test_shuffled_covers_every_entry_once_per_epoch_then_pads():
    counts = scipy.sparse.random(20, 20, density=0.3, random_state=0, format="csr") * 9
    built = glove.entries(counts)
    rng = np.random.default_rng(0)
    epochs = [list(glove.shuffled(built, rng, batch_size=7, steps_per_call=3)) for _ in range(2)]
    size = built.rows_N.shape[0]
    assert size % 21 and all(len(calls) == -(-size // 21) for calls in epochs)
    keys = []
    for calls in epochs:
        assert all(batch.rows_N.shape == (3, 7) for batch in calls)
        flat = glove.Batch(*(np.concatenate([f.ravel() for f in field])
                             for field in zip(*calls)))
        real = flat.weight_N > 0
        assert np.all(flat.weight_N[size:] == 0) and real[:size].all()
        key = flat.rows_N[:size] * 20 + flat.cols_N[:size]
        np.testing.assert_array_equal(np.sort(key), np.sort(built.rows_N * 20 + built.cols_N))
        keys.append(key)
    assert not np.array_equal(keys[0], keys[1])


def topic_corpus(seed=0, sentences=80):
    """Sentences drawn from one of two disjoint 8-word topics each."""
    rng = np.random.default_rng(seed)
    topics = [[f"{name}{i}" for i in range(8)] for name in ("sea", "code")]
    return [list(rng.choice(topics[s % 2], size=12)) for s in range(sentences)]


def test_training_is_deterministic_for_a_seed():
    sentences = topic_corpus()
    settings = dict(dim=8, window=3, min_count=1, epochs=3, batch_size=16, steps_per_call=2)
    built, first = glove.train(sentences, seed=7, progress=True, **settings)
    _, again = glove.train(sentences, seed=7, progress=False, **settings)
    _, other = glove.train(sentences, seed=8, progress=False, **settings)
    assert first.shape == (16, 8) and first.dtype == np.float32 and len(built) == 16
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


# Pairs of the Lee stories (cricket, bushfires, the Middle East...) a few neighbours apart.
LEE_PAIRS = [("president", "bush"), ("police", "officers"), ("fire", "rural"),
             ("government", "federal"), ("israeli", "palestinian"), ("qantas", "workers")]


def partner_ranks(kv):
    """How many words are nearer than each pair's partner."""
    ranks = []
    for word, partner in LEE_PAIRS:
        cosine_V = kv.unit_VD @ kv[word] / np.linalg.norm(kv[word])
        cosine_V[kv.get_index(word)] = -np.inf
        ranks.append(int(np.sum(cosine_V > cosine_V[kv.get_index(partner)])))
    return np.array(ranks)


def test_training_on_the_lee_corpus_learns():
    pytest.importorskip("gensim")
    sentences = [vocab.tokenize(story) for story in text.gensim_lee()]
    built = vocab.Vocab.build(sentences, min_count=5)
    counts = count.cooccurrence((built.encode(s) for s in sentences), len(built), 10,
                                weighting="harmonic")
    all_entries = glove.entries(counts, x_max=5.0)
    rng = np.random.default_rng(0)
    params, gradsq = (jnp.asarray(t) for t in glove.init_tables(rng, len(built), 50))
    before = float(loss(params, all_entries))
    params, gradsq, cost_E = glove.fit(params, gradsq, all_entries, rng, epochs=15, eta=0.1,
                                       batch_size=1024, steps_per_call=16)
    after = float(loss(params, all_entries))
    assert after < 0.2 * before and cost_E[-1] < 0.3 * cost_E[0]
    assert np.all(np.diff(cost_E) < 0)
    kv = KeyedVectors(list(built.words), glove.vectors(params))
    assert np.all(partner_ranks(kv) < 5), partner_ranks(kv)
    random_vectors = np.random.default_rng(0).normal(size=kv.vectors_VD.shape)
    assert np.median(partner_ranks(KeyedVectors(kv.words, random_vectors))) > 100


def test_train_rejects_untokenized_text_and_bad_settings():
    sentences = [["a", "b", "a", "b"]] * 3
    with pytest.raises(DlxError, match="tokenized sentences"):
        glove.train(["a raw document"], progress=False)
    with pytest.raises(DlxError, match="x_max > 0"):
        glove.train(sentences, x_max=0, progress=False)
    with pytest.raises(DlxError, match="alpha >= 0"):
        glove.train(sentences, alpha=-1, progress=False)
    with pytest.raises(DlxError, match="eta > 0"):
        glove.train(sentences, eta=0, progress=False)
    with pytest.raises(DlxError, match="window >= 1"):
        glove.train(sentences, window=0, progress=False)
    with pytest.raises(DlxError, match="batch_size >= 1"):
        glove.train(sentences, batch_size=0, progress=False)
    with pytest.raises(DlxError, match="no word occurs min_count=5 times"):
        glove.train([["a", "b"]], progress=False)
    with pytest.raises(DlxError, match="no two vocabulary words occur within window=2"):
        glove.train([["a"], ["b"]] * 5, min_count=1, window=2, progress=False)


def test_vectors_answer_known_words_and_raise_oov_error_for_others():
    built, vectors_VD = glove.train(topic_corpus(sentences=20), dim=4, window=2, min_count=1,
                                    epochs=1, batch_size=32, progress=False)
    kv = KeyedVectors(list(built.words), vectors_VD)
    np.testing.assert_array_equal(kv["sea0"], vectors_VD[built.index("sea0")])
    with pytest.raises(OOVError, match="'whale' is not in the vocabulary"):
        kv["whale"]
    with pytest.raises(KeyError):
        kv.most_similar("whale")

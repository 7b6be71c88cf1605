"""GloVe (Pennington, Socher & Manning 2014) trained as glove.c trains it, in jit-compiled steps.

The co-occurrence matrix X is glove.c's (`cooccur -symmetric 1`): for every pair of
in-vocabulary tokens at distance d <= window in one sentence, X[u, v] and X[v, u] each gain 1/d
(`count.cooccurrence(..., weighting="harmonic")`; out-of-vocabulary tokens are dropped before
distances are measured, as cooccur.c skips them). Each nonzero entry (i, j, x) is one example of
the weighted least-squares loss

    J = Σ 0.5 f(x) (w_i·w̃_j + b_i + b̃_j - log x)²,   f(x) = min(1, (x / x_max)^alpha),

minimised by glove.c's AdaGrad: with diff = w_i·w̃_j + b_i + b̃_j - log x and g = eta f(x) diff,
w_i -= g w̃_j / sqrt(G_w_i), w̃_j -= g w_i / sqrt(G_w̃_j), b_i -= g / sqrt(G_b_i),
b̃_j -= g / sqrt(G_b̃_j), and then each accumulator G (elementwise, starting at 1) gains the
square of its step's numerator (g w̃_j, g w_i, g, g). The tables start uniform in ±0.5/dim,
biases included. The vectors returned are w + w̃ (glove.c's `-model 2`).

The tables are laid out as glove.c's W: `params_2VE` holds, with E = D + 1, a word's vector and
bias in row i and its context vector and bias in row V + i, the bias last; `gradsq_2VE` holds
their accumulators. A bias is then a weight whose input is always 1.

What differs from glove.c, for speed:
- A batch of `batch_size` entries is one step: all entries read the same tables, and their
  steps and accumulator increments are summed (scatter-add into donated tables). A row that
  appears k times in a batch moves by the sum of k steps each scaled by the old accumulator,
  where glove.c's threads apply each entry in turn (Hogwild: without locks, so theirs also
  overlap now and then). One jitted call runs `steps_per_call` steps in order (`lax.scan`).
- The entries are shuffled afresh each epoch from the seeded Generator; glove.c shuffles the
  file once (`shuffle`) and reads it in the same order every iteration.
- float32 tables where glove.c computes in double, and no check for NaN or inf steps (glove.c
  skips such an entry's update).
"""

from __future__ import annotations

import functools
from typing import Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import tqdm

from dlx.embeddings import count as count_lib
from dlx.embeddings import vocab as vocab_lib
from dlx.errors import DlxError


class Batch(NamedTuple):
    """N co-occurrence entries: rows_N (int32 word i), cols_N (int32 context j, in [0, V)),
    log_x_N (float32 log X[i, j]) and weight_N (float32 f(X[i, j]); 0 for padding)."""
    rows_N: np.ndarray
    cols_N: np.ndarray
    log_x_N: np.ndarray
    weight_N: np.ndarray


def weighting(x_N: np.ndarray, x_max: float, alpha: float) -> np.ndarray:
    """float32 (N,): GloVe's f(x) = (x / x_max)^alpha below x_max, 1 from x_max on."""
    x_N = np.asarray(x_N, dtype=np.float64)
    return np.where(x_N < x_max, (x_N / x_max) ** alpha, 1.0).astype(np.float32)


def entries(counts: scipy.sparse.spmatrix, x_max: float = 100.0, alpha: float = 0.75) -> Batch:
    """The nonzero entries of (V, V) co-occurrence counts, row by row, as one `Batch`."""
    coo = scipy.sparse.csr_matrix(counts).tocoo()
    keep = coo.data > 0
    x_N = coo.data[keep]
    return Batch(coo.row[keep].astype(np.int32), coo.col[keep].astype(np.int32),
                 np.log(x_N).astype(np.float32), weighting(x_N, x_max, alpha))


def padding(size: int) -> Batch:
    """`size` entries of weight 0 (word 0, context 0), which change nothing."""
    return Batch(np.zeros(size, np.int32), np.zeros(size, np.int32), np.zeros(size, np.float32),
                 np.zeros(size, np.float32))


def init_tables(rng: np.random.Generator, size: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(params_2VE, gradsq_2VE) float32, E = dim + 1: glove.c's W, uniform (rand - 0.5) / dim
    (word rows, then context rows; bias last), and its AdaGrad sums, all 1."""
    params_2VE = (rng.random((2 * size, dim + 1), dtype=np.float32) - 0.5) / dim
    return params_2VE, np.ones_like(params_2VE)


def vectors(params_2VE: jax.Array | np.ndarray) -> np.ndarray:
    """(V, D) float32 word + context vectors, biases dropped (glove.c's -model 2)."""
    params_2VE = np.asarray(params_2VE)
    size = params_2VE.shape[0] // 2
    return params_2VE[:size, :-1] + params_2VE[size:, :-1]


def diffs(word_NE: jax.Array, context_NE: jax.Array, log_x_N: jax.Array) -> jax.Array:
    """(N,) w_i·w̃_j + b_i + b̃_j - log x of the entries' word and context rows (bias last)."""
    return (jnp.einsum("nd,nd->n", word_NE[:, :-1], context_NE[:, :-1]) + word_NE[:, -1]
            + context_NE[:, -1] - log_x_N)


def loss(params_2VE: jax.Array, batch: Batch) -> jax.Array:
    """The batch's weighted least-squares loss Σ 0.5 f(x) diff²."""
    rows_N, cols_N, log_x_N, weight_N = batch
    diff_N = diffs(params_2VE[rows_N], params_2VE[cols_N + params_2VE.shape[0] // 2], log_x_N)
    return 0.5 * jnp.sum(weight_N * diff_N ** 2)


def update(params_2VE: jax.Array, gradsq_2VE: jax.Array, batch: Batch,
           eta: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(params_2VE, gradsq_2VE, cost) after glove.c's AdaGrad step on every entry of the batch,
    all read from the old tables and summed; cost is `loss` before the step."""
    rows_N, cols_N, log_x_N, weight_N = batch
    size = params_2VE.shape[0] // 2
    rows_M = jnp.concatenate([rows_N, cols_N + size])  # M = 2N: word rows, then context rows
    params_ME = params_2VE[rows_M]
    gradsq_ME = gradsq_2VE[rows_M]
    # Gather before scattering into the donated tables; otherwise XLA copies them whole.
    params_ME, gradsq_ME, params_2VE, gradsq_2VE = jax.lax.optimization_barrier(
        (params_ME, gradsq_ME, params_2VE, gradsq_2VE))
    word_NE, context_NE = jnp.split(params_ME, 2)
    diff_N = diffs(word_NE, context_NE, log_x_N)
    fdiff_N = weight_N * diff_N
    cost = 0.5 * jnp.sum(fdiff_N * diff_N)
    # glove.c's temp1 = eta fdiff w̃_j (word row) and temp2 = eta fdiff w_i (context row); the
    # bias's input is 1, so its numerator is eta fdiff.
    inputs_ME = jnp.concatenate([context_NE, word_NE]).at[:, -1].set(1.0)
    fdiff_M = jnp.tile(eta * fdiff_N, 2)
    step_ME = fdiff_M[:, None] * inputs_ME
    params_2VE = params_2VE.at[rows_M].add(-step_ME / jnp.sqrt(gradsq_ME))
    gradsq_2VE = gradsq_2VE.at[rows_M].add(step_ME * step_ME)
    return params_2VE, gradsq_2VE, cost


def scan(params_2VE: jax.Array, gradsq_2VE: jax.Array, batches_S: Batch,
         eta: float | jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(params_2VE, gradsq_2VE, cost) after `update` on each of S batches stacked on a leading
    axis; cost sums the batches' costs."""
    def body(carry, batch):
        params, gradsq, total = carry
        params, gradsq, cost = update(params, gradsq, Batch(*batch), eta)
        return (params, gradsq, total + cost), None
    return jax.lax.scan(body, (params_2VE, gradsq_2VE, jnp.zeros((), jnp.float32)),
                        tuple(batches_S))[0]


glove_step = jax.jit(update, donate_argnums=(0, 1))
glove_steps = jax.jit(scan, donate_argnums=(0, 1))


def shuffled(all_entries: Batch, rng: np.random.Generator, batch_size: int,
             steps_per_call: int) -> Iterator[Batch]:
    """One epoch of the entries in a random order, as stacked (S, B) batches of S =
    steps_per_call steps; the last is filled with weight-0 entries.

    The host shuffles: 0.2 s for 2.9M entries, where keeping them on the device and permuting
    there (jax.random.permutation, then a gather per call) made an epoch ~2 s slower on CPU."""
    size = all_entries.rows_N.shape[0]
    per_call = batch_size * steps_per_call
    order = rng.permutation(size)
    calls = -(-size // per_call)
    pad = padding(calls * per_call - size)
    fields = [np.concatenate([field[order], filler]).reshape(calls, steps_per_call, batch_size)
              for field, filler in zip(all_entries, pad)]
    for call in range(calls):
        yield Batch(*(field[call] for field in fields))


def fit(params_2VE: jax.Array, gradsq_2VE: jax.Array, all_entries: Batch,
        rng: np.random.Generator, *, epochs: int, eta: float, batch_size: int,
        steps_per_call: int, progress: bool = False) -> tuple[jax.Array, jax.Array, np.ndarray]:
    """(params_2VE, gradsq_2VE, cost_E): the tables after `epochs` shuffled passes over the
    entries, and each epoch's mean cost per entry (glove.c's printed cost)."""
    size = all_entries.rows_N.shape[0]
    run = functools.partial(glove_steps, eta=np.float32(eta))
    costs = []
    with tqdm.tqdm(total=epochs * size, unit="entry", unit_scale=True, disable=not progress,
                   desc="GloVe") as bar:
        for _ in range(epochs):
            total = jnp.zeros((), jnp.float32)
            done = 0
            for batches_S in shuffled(all_entries, rng, batch_size, steps_per_call):
                params_2VE, gradsq_2VE, cost = run(params_2VE, gradsq_2VE, batches_S)
                total += cost
                step = min(batch_size * steps_per_call, size - done)
                bar.update(step)
                done += step
            costs.append(float(total) / max(size, 1))
            bar.set_postfix(cost=f"{costs[-1]:.4f}")
    return params_2VE, gradsq_2VE, np.array(costs)


def _check(sentences: Sequence[Sequence[str]], x_max: float, alpha: float, eta: float,
           **settings: int) -> None:
    vocab_lib.check_arguments("glove.train", sentences, **settings)
    if not x_max > 0:
        raise DlxError(f"glove.train needs x_max > 0 (the count where f(x) reaches 1), got "
                       f"{x_max}")
    if not alpha >= 0:
        raise DlxError(f"glove.train needs alpha >= 0 (f(x) = (x / x_max)^alpha), got {alpha}")
    if not eta > 0:
        raise DlxError(f"glove.train needs a learning rate eta > 0, got {eta}")


def train(sentences: Sequence[Sequence[str]], *, dim: int = 100, window: int = 10,
          min_count: int = 5, max_vocab: int = 0, x_max: float = 5.0, alpha: float = 0.75,
          epochs: int = 25, eta: float = 0.1, batch_size: int = 1024, steps_per_call: int = 16,
          seed: int = 0, progress: bool = True) -> tuple[vocab_lib.Vocab, np.ndarray]:
    """(vocab, vectors_VD float32): GloVe vectors (w + w̃) of the words seen min_count times.

    x_max and eta are tuned for corpora of about a million words: glove.c's x_max=100 and
    eta=0.05 (for billions of words) leave f(x) so small there that in 25 epochs the vectors
    barely leave their random start (WordSim-353 0.03 against 0.30 on enwiki + Lee, 0.5M
    words). The same seed gives the same vectors. Each jitted call runs steps_per_call steps
    of batch_size entries (see the module docstring).
    """
    _check(sentences, x_max, alpha, eta, dim=dim, window=window, epochs=epochs,
           batch_size=batch_size, steps_per_call=steps_per_call)
    vocab = vocab_lib.vocabulary(sentences, min_count, max_vocab)
    counts = count_lib.cooccurrence((vocab.encode(s) for s in sentences), len(vocab), window,
                                    weighting="harmonic")
    if not counts.nnz:
        raise DlxError(f"no two vocabulary words occur within window={window} of each other; "
                       f"give more text or lower min_count")
    rng = np.random.default_rng(seed)
    params_2VE, gradsq_2VE = (jnp.asarray(t) for t in init_tables(rng, len(vocab), dim))
    params_2VE, _, _ = fit(params_2VE, gradsq_2VE, entries(counts, x_max, alpha), rng,
                           epochs=epochs, eta=eta, batch_size=batch_size,
                           steps_per_call=steps_per_call, progress=progress)
    return vocab, vectors(params_2VE)

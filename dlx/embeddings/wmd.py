"""Word Mover's Distance (Kusner et al. 2015) between documents, exact and entropic.

A document is its normalised bag of words (nBOW: each distinct in-vocabulary word weighs its
count over the in-vocabulary length); WMD is the cheapest way to move one nBOW onto the other
when moving mass from word i to word j costs the euclidean distance of their vectors (unit
vectors by default, as in gensim). `wmd_exact` solves the transport problem with POT's network
simplex and matches gensim's `KeyedVectors.wmdistance`. `wmd_sinkhorn` solves the entropic
problem (Cuturi 2013) for many pairs at once in JAX: log-domain Sinkhorn iterations on padded,
masked documents, vmapped over pairs, returning the transport cost of the entropic plan, which
approaches the exact WMD as `epsilon` shrinks.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.distance import cdist

from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError

# Padded document lengths are rounded up to a multiple of this, to bound recompilation.
_LENGTH_QUANTUM = 16
_CHECK_EVERY = 10  # Sinkhorn iterations between two checks of the marginal error


def _nbow(kv: KeyedVectors, document: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """Rows of the distinct in-vocabulary words of `document` and their (W,) float64 weights."""
    rows = [kv.index[token] for token in document if token in kv.index]
    if not rows:
        return [], np.zeros(0)
    distinct, counts = np.unique(np.array(rows), return_counts=True)
    return distinct.tolist(), counts / len(rows)


def _table(kv: KeyedVectors, norm: bool) -> np.ndarray:
    return kv.unit_VD if norm else kv.vectors_VD


def wmd_exact(kv: KeyedVectors, document1: Sequence[str], document2: Sequence[str],
              norm: bool = True) -> float:
    """Exact WMD between two token lists (out-of-vocabulary tokens dropped; inf if a document
    has none left), with unit word vectors if `norm`, as gensim's `wmdistance`."""
    import ot
    rows1, weights1 = _nbow(kv, document1)
    rows2, weights2 = _nbow(kv, document2)
    if not rows1 or not rows2:
        return float("inf")
    if len(set(rows1) | set(rows2)) == 1:
        return 0.0
    table_VD = _table(kv, norm)
    # Only the words of each document carry mass, so the cost matrix is theirs alone.
    cost_12 = cdist(table_VD[rows1], table_VD[rows2])
    return float(ot.emd2(weights1, weights2, cost_12))


def pad_documents(kv: KeyedVectors, documents: Sequence[Sequence[str]],
                  length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) int32 rows of each document's distinct in-vocabulary words and (B, L) float32
    nBOW weights, zero past each document's words; L = `length` or the most distinct words."""
    bags = [_nbow(kv, document) for document in documents]
    longest = max((len(rows) for rows, _ in bags), default=0)
    length = max(longest, 1) if length is None else length
    if length < longest:
        raise DlxError(f"length={length} is shorter than a document with {longest} distinct "
                       f"in-vocabulary words; expected length >= {longest}")
    rows_BL = np.zeros((len(bags), length), dtype=np.int32)
    weights_BL = np.zeros((len(bags), length), dtype=np.float32)
    for i, (rows, weights) in enumerate(bags):
        rows_BL[i, :len(rows)] = rows
        weights_BL[i, :len(rows)] = weights
    return rows_BL, weights_BL


def _pair_cost_matrix(rows_L: jax.Array, rows_M: jax.Array, table_VD: jax.Array) -> jax.Array:
    """(L, M) euclidean distances between the vectors of two lists of rows of `table_VD`."""
    x_LD, y_MD = table_VD[rows_L], table_VD[rows_M]
    squared_LM = (jnp.sum(x_LD * x_LD, axis=1)[:, None] + jnp.sum(y_MD * y_MD, axis=1)[None, :]
                  - 2.0 * x_LD @ y_MD.T)
    # In float32 the expansion leaves ~1e-7 for a word and itself, ~3e-4 after the square root:
    # words shared by both documents must cost exactly 0, as they do in the exact WMD.
    same_LM = rows_L[:, None] == rows_M[None, :]
    return jnp.where(same_LM, 0.0, jnp.sqrt(jnp.maximum(squared_LM, 0.0)))


def _sinkhorn_step(f_L: jax.Array, g_M: jax.Array, cost_LM: jax.Array, log_a_L: jax.Array,
                   log_b_M: jax.Array, epsilon: float) -> tuple[jax.Array, jax.Array]:
    """One log-domain update of both potentials; the plan is a_i b_j exp((f_i + g_j - C_ij)/eps)."""
    f_L = -epsilon * jax.nn.logsumexp(log_b_M[None, :] + (g_M[None, :] - cost_LM) / epsilon,
                                      axis=1)
    g_M = -epsilon * jax.nn.logsumexp(log_a_L[:, None] + (f_L[:, None] - cost_LM) / epsilon,
                                      axis=0)
    return f_L, g_M


def _plan(f_L: jax.Array, g_M: jax.Array, cost_LM: jax.Array, log_a_L: jax.Array,
          log_b_M: jax.Array, epsilon: float) -> jax.Array:
    return jnp.exp(log_a_L[:, None] + log_b_M[None, :]
                   + (f_L[:, None] + g_M[None, :] - cost_LM) / epsilon)


@jax.jit
def sinkhorn_costs(table_VD: jax.Array, rows_a_PL: jax.Array, weights_a_PL: jax.Array,
                   rows_b_PM: jax.Array, weights_b_PM: jax.Array, epsilon: float | jax.Array,
                   iterations: int | jax.Array, tolerance: float | jax.Array) -> jax.Array:
    """(P,) float32 transport cost of the entropic plan between padded nBOW pairs (rows into the
    (V, D) `table_VD`); stops after `iterations` or once every row-marginal L1 error is below
    `tolerance` (checked every 10 iterations). Every document needs a positive weight."""
    cost_PLM = jax.vmap(_pair_cost_matrix, in_axes=(0, 0, None))(rows_a_PL, rows_b_PM, table_VD)
    log_a_PL, log_b_PM = jnp.log(weights_a_PL), jnp.log(weights_b_PM)  # padding: -inf
    step = jax.vmap(functools.partial(_sinkhorn_step, epsilon=epsilon))
    plan = jax.vmap(functools.partial(_plan, epsilon=epsilon))

    def marginal_error(f_PL: jax.Array, g_PM: jax.Array) -> jax.Array:
        rows_PL = plan(f_PL, g_PM, cost_PLM, log_a_PL, log_b_PM).sum(axis=2)
        return jnp.max(jnp.abs(rows_PL - weights_a_PL).sum(axis=1))

    def keep_going(state: tuple) -> jax.Array:
        done, _, _, error = state
        return (done < iterations) & (error > tolerance)

    def run(state: tuple) -> tuple:
        done, f_PL, g_PM, _ = state
        chunk = jnp.minimum(_CHECK_EVERY, iterations - done)
        f_PL, g_PM = jax.lax.fori_loop(
            0, chunk, lambda _, fg: step(*fg, cost_PLM, log_a_PL, log_b_PM), (f_PL, g_PM))
        return done + chunk, f_PL, g_PM, marginal_error(f_PL, g_PM)

    start = (jnp.int32(0), jnp.zeros_like(weights_a_PL), jnp.zeros_like(weights_b_PM),
             jnp.float32(jnp.inf))
    _, f_PL, g_PM, _ = jax.lax.while_loop(keep_going, run, start)
    plan_PLM = plan(f_PL, g_PM, cost_PLM, log_a_PL, log_b_PM)
    return jnp.sum(plan_PLM * cost_PLM, axis=(1, 2))


def _fit(array_BL: np.ndarray, batch: int, length: int) -> np.ndarray:
    """(batch, length): `array_BL` cut or zero-padded on the right, zero rows appended below."""
    array_BL = array_BL[:, :length]
    return np.pad(array_BL, ((0, batch - array_BL.shape[0]), (0, length - array_BL.shape[1])))


def wmd_sinkhorn(kv: KeyedVectors, documents_a: Sequence[Sequence[str]],
                 documents_b: Sequence[Sequence[str]], epsilon: float = 0.01,
                 iterations: int = 500, tolerance: float = 1e-3, norm: bool = True,
                 batch_size: int = 64) -> np.ndarray:
    """(P,) float64 entropic WMD of each pair (documents_a[p], documents_b[p]): the transport
    cost of the epsilon-regularised optimal plan (inf where a document has no known word).

    Pairs are grouped by their longer document's distinct words rounded up to a multiple of 16,
    and each group solved in batches of at most `batch_size` pairs (padded to a power of two),
    so padding stays small, a batch stops with its slowest pair, and few shapes get compiled."""
    if len(documents_a) != len(documents_b):
        raise DlxError(f"{len(documents_a)} documents on one side and {len(documents_b)} on "
                       f"the other; expected pairs")
    if epsilon <= 0 or iterations < 1 or tolerance < 0 or batch_size < 1:
        raise DlxError(f"epsilon={epsilon}, iterations={iterations}, tolerance={tolerance}, "
                       f"batch_size={batch_size}; expected epsilon > 0, iterations >= 1, "
                       f"tolerance >= 0 and batch_size >= 1")
    rows_a_PL, weights_a_PL = pad_documents(kv, documents_a)
    rows_b_PM, weights_b_PM = pad_documents(kv, documents_b)
    sizes_a_P, sizes_b_P = (weights_a_PL > 0).sum(axis=1), (weights_b_PM > 0).sum(axis=1)
    empty_P = (sizes_a_P == 0) | (sizes_b_P == 0)
    # An empty side (and a padding pair) gets a unit mass on row 0, so the iterations stay
    # finite; its result is replaced by inf.
    weights_a_PL[empty_P, 0] = 1.0
    weights_b_PM[empty_P, 0] = 1.0
    table_VD = jnp.asarray(_table(kv, norm))
    costs_P = np.full(len(documents_a), np.inf)
    lengths_P = _LENGTH_QUANTUM * np.ceil(np.maximum(np.maximum(sizes_a_P, sizes_b_P), 1)
                                          / _LENGTH_QUANTUM).astype(np.int64)
    for length in np.unique(lengths_P):
        members = np.flatnonzero(lengths_P == length)
        for start in range(0, len(members), batch_size):
            batch = members[start:start + batch_size]
            padded_batch = min(batch_size, 1 << (len(batch) - 1).bit_length())
            padded = [_fit(array[batch], padded_batch, int(length))
                      for array in (rows_a_PL, weights_a_PL, rows_b_PM, weights_b_PM)]
            padded[1][len(batch):, 0] = padded[3][len(batch):, 0] = 1.0
            costs_P[batch] = np.asarray(sinkhorn_costs(
                table_VD, *padded, np.float32(epsilon), np.int32(iterations),
                np.float32(tolerance)))[:len(batch)]
    costs_P[empty_P] = np.inf
    return costs_P

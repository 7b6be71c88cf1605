"""word2vec (skip-gram and CBOW with negative sampling) trained by jit-compiled SGD steps.

The math is word2vec.c's: `syn0` (the input vectors, the embeddings) starts uniform in ±1/dim
(gensim 4's choice), `syn1` (the output vectors, word2vec.c's `syn1neg`) at zero. An example is
one centre word: its hidden vector h is a `syn0` row (skip-gram: the centre) or the mean of
several (CBOW: the context words); its targets are `syn1` rows (skip-gram: the contexts; CBOW:
the centre). Its loss, Σ_targets [-log σ(h·syn1[target]) - Σ_noise log σ(-h·syn1[noise])], is
minimised by plain SGD with a learning rate decaying linearly from `alpha` to `min_alpha` over
all words of all epochs. h's gradient goes, whole, to every row h was made of (word2vec.c's
CBOW rule; fastText's too, whose rows are a word's n-gram buckets: it reuses `output_update`).

What differs from word2vec.c, for speed:
- A batch of `batch_words` centres is one step: all read the same tables and their updates
  are summed (scatter-add into donated tables), where word2vec.c applies each pair at once.
  One jitted call runs `steps_per_call` such steps in order (`lax.scan`).
- Skip-gram examples are grouped by centre: h is gathered, scored against noise and updated
  once per centre rather than once per (centre, context) pair.
- Noise words are shared: each block of `block` centres draws `shared_negatives` (K) noise
  words, so the noise scores are one (block, D) @ (D, K) matmul. A noise word's term is
  weighted negative / K per target of the centre that differs from it, so the expected
  gradient is word2vec.c's: `negative` noise words per pair, skipping one equal to the target.
  K must not be much smaller than block: each drawn noise row then takes block/K times more
  pairs' worth of update at once, and K=5 over 32 centres diverged on real text.
- CBOW reads each step's centres as one stretch of the subsampled token stream
  (`StreamBatch`): the step gathers the stretch's rows once, forms each h from shifted slices
  of them and adds each row's summed gradient once, where a per-centre form gathers and
  scatters 2 * window context slots for every centre (~1.4x slower on CPU).
- σ is exact, where word2vec.c reads a table and clips scores at ±6.

The host (NumPy, a background thread) subsamples, draws windows and noise words and forms the
batches in a fixed order from one seeded Generator, so a seed fixes the vectors.
"""

from __future__ import annotations

import concurrent.futures
import functools
import queue
import threading
from typing import Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from dlx.embeddings import vocab as vocab_lib
from dlx.errors import DlxError

CHUNK_TOKENS = 65_536  # tokens subsampled and windowed at once on the host
PREFETCH = 4  # calls' batches made ready ahead of the device


class Batch(NamedTuple):
    """One step's examples: inputs_NC (int32 syn0 rows averaged into h), targets_NT (int32
    syn1 rows), noise_GK (int32 syn1 rows shared by each block of N / G examples), lr (float32
    scalar). -1 marks an empty slot; a padding example has no targets."""
    inputs_NC: np.ndarray
    targets_NT: np.ndarray
    noise_GK: np.ndarray
    lr: np.ndarray


class StreamBatch(NamedTuple):
    """One CBOW step as a stretch of the subsampled token stream: stream_P (int32, P = N + 2 *
    window: the tokens from `window` before the step's first centre to `window` after its
    last; -1 outside the corpus), valid_NC (bool, C = 2 * window: whether slot c of centre n,
    stream position n + window + vocab.context_offsets(window)[c], is one of its contexts),
    noise_GK and lr as in `Batch`. Centre n is stream_P[window + n]; one without a valid slot
    is skipped."""
    stream_P: np.ndarray
    valid_NC: np.ndarray
    noise_GK: np.ndarray
    lr: np.ndarray


def init_tables(rng: np.random.Generator, size: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(syn0_VD, syn1_VD) float32: syn0 uniform in [-1/dim, 1/dim) as gensim 4 (word2vec.c:
    ±0.5/dim, which on a 0.5M-word corpus scored ~0.015 lower on WordSim-353), syn1 zeros."""
    syn0_VD = (2 * rng.random((size, dim), dtype=np.float32) - 1) / dim
    return syn0_VD, np.zeros((size, dim), np.float32)


def learning_rate(words_done: np.ndarray | float, total_words: int, alpha: float,
                  min_alpha: float) -> np.ndarray:
    """alpha decayed linearly to min_alpha as words_done goes from 0 to total_words."""
    progress = np.asarray(words_done, dtype=np.float64) / max(total_words, 1)
    return np.maximum(min_alpha, alpha - (alpha - min_alpha) * progress)


def hidden(syn0_VD: jax.Array, inputs_NC: jax.Array) -> jax.Array:
    """(N, D): the mean of each example's syn0 rows (inputs_NC; -1 = empty slot)."""
    if inputs_NC.shape[1] == 1:
        return syn0_VD[inputs_NC[:, 0]]
    valid_NC = inputs_NC >= 0
    rows_NCD = syn0_VD[jnp.where(valid_NC, inputs_NC, 0)]
    count_N = jnp.maximum(valid_NC.sum(axis=1), 1).astype(syn0_VD.dtype)
    return jnp.einsum("ncd,nc->nd", rows_NCD, valid_NC.astype(syn0_VD.dtype)) / count_N[:, None]


def noise_weights(targets_NT: jax.Array, noise_GK: jax.Array, negative: int) -> jax.Array:
    """(G, B, K): negative / K times the number of the example's targets that differ from the
    noise word (word2vec.c skips a noise word equal to the pair's target)."""
    groups, k = noise_GK.shape
    targets_GBT = targets_NT.reshape(groups, -1, targets_NT.shape[1])
    counts_GBK = jnp.sum((targets_GBT[..., None] >= 0)
                         & (targets_GBT[..., None] != noise_GK[:, None, None, :]), axis=2)
    return counts_GBK.astype(jnp.float32) * (negative / k)


def sgns_loss_of_hidden(h_ND: jax.Array, syn1_VD: jax.Array, targets_NT: jax.Array,
                        noise_GK: jax.Array, negative: int) -> jax.Array:
    """The batch's summed negative-sampling loss given its hidden vectors h_ND."""
    groups, _ = noise_GK.shape
    valid_NT = targets_NT >= 0
    pos_NT = jnp.einsum("nd,ntd->nt", h_ND, syn1_VD[jnp.where(valid_NT, targets_NT, 0)])
    neg_GBK = jnp.einsum("gbd,gkd->gbk", h_ND.reshape(groups, -1, h_ND.shape[-1]),
                         syn1_VD[noise_GK])
    return (-jnp.sum(valid_NT * jax.nn.log_sigmoid(pos_NT))
            - jnp.sum(noise_weights(targets_NT, noise_GK, negative)
                      * jax.nn.log_sigmoid(-neg_GBK)))


def sgns_loss(syn0_VD: jax.Array, syn1_VD: jax.Array, batch: Batch, negative: int) -> jax.Array:
    """The batch's summed negative-sampling loss (its lr unused)."""
    return sgns_loss_of_hidden(hidden(syn0_VD, batch.inputs_NC), syn1_VD, batch.targets_NT,
                               batch.noise_GK, negative)


def output_update(h_ND: jax.Array, syn0_VD: jax.Array, syn1_VD: jax.Array,
                  targets_NT: jax.Array, noise_GK: jax.Array, lr: jax.Array,
                  negative: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(dh_ND, syn0_VD, syn1_VD): syn1 moved by -lr * the gradient of `sgns_loss_of_hidden`, and
    -lr * its gradient in h, which the caller adds to the rows h was made of. syn0_VD only passes
    through, ordered after the gathers from syn1 (see below)."""
    groups, _ = noise_GK.shape
    valid_NT = targets_NT >= 0
    rows_NT = jnp.where(valid_NT, targets_NT, 0)  # an empty slot reads row 0 and adds 0 to it
    target_NTD = syn1_VD[rows_NT]
    noise_GKD = syn1_VD[noise_GK]
    # Gather before scattering into the donated tables; otherwise XLA copies them whole.
    h_ND, target_NTD, noise_GKD, syn0_VD, syn1_VD = jax.lax.optimization_barrier(
        (h_ND, target_NTD, noise_GKD, syn0_VD, syn1_VD))
    dim = h_ND.shape[-1]
    h_GBD = h_ND.reshape(groups, -1, dim)
    pos_NT = jnp.einsum("nd,ntd->nt", h_ND, target_NTD)
    neg_GBK = jnp.einsum("gbd,gkd->gbk", h_GBD, noise_GKD)
    # word2vec.c's g = (label - σ(score)) * alpha, per target and per noise word.
    g_pos_NT = lr * valid_NT * jax.nn.sigmoid(-pos_NT)
    g_neg_GBK = -lr * noise_weights(targets_NT, noise_GK, negative) * jax.nn.sigmoid(neg_GBK)
    dh_ND = (jnp.einsum("nt,ntd->nd", g_pos_NT, target_NTD)
             + jnp.einsum("gbk,gkd->gbd", g_neg_GBK, noise_GKD).reshape(-1, dim))
    d_target_NTD = g_pos_NT[:, :, None] * h_ND[:, None, :]
    d_noise_KD = jnp.einsum("gbk,gbd->gkd", g_neg_GBK, h_GBD).reshape(-1, dim)
    rows_M = jnp.concatenate([rows_NT.reshape(-1), noise_GK.reshape(-1)])
    syn1_VD = syn1_VD.at[rows_M].add(
        jnp.concatenate([d_target_NTD.reshape(-1, dim), d_noise_KD]), mode="promise_in_bounds")
    return dh_ND, syn0_VD, syn1_VD


def sgns_update(syn0_VD: jax.Array, syn1_VD: jax.Array, batch: Batch,
                negative: int) -> tuple[jax.Array, jax.Array]:
    """(syn0_VD, syn1_VD) after one SGD step on the batch: syn1 moves by -lr * the gradient of
    `sgns_loss`, each input row by -lr * the gradient of its example's h."""
    inputs_NC, targets_NT, noise_GK, lr = batch
    dh_ND, syn0_VD, syn1_VD = output_update(hidden(syn0_VD, inputs_NC), syn0_VD, syn1_VD,
                                            targets_NT, noise_GK, lr, negative)
    if inputs_NC.shape[1] == 1:
        return syn0_VD.at[inputs_NC[:, 0]].add(dh_ND), syn1_VD
    rows_NC = jnp.where(inputs_NC >= 0, inputs_NC, syn0_VD.shape[0])
    dh_NCD = jnp.broadcast_to(dh_ND[:, None, :], (*inputs_NC.shape, dh_ND.shape[-1]))
    return syn0_VD.at[rows_NC].add(dh_NCD, mode="drop"), syn1_VD


def scanned_steps(update: Callable, batch_type: type) -> Callable:
    """A jitted (table, syn1_VD, batches_S, negative) -> (table, syn1_VD): `update` on each of S
    batches of `batch_type` stacked on a leading axis, in order (`lax.scan`), tables donated."""
    def scan(table: jax.Array, syn1_VD: jax.Array, batches_S: tuple,
             negative: int) -> tuple[jax.Array, jax.Array]:
        def body(tables, batch):
            return update(*tables, batch_type(*batch), negative), None
        return jax.lax.scan(body, (table, syn1_VD), tuple(batches_S))[0]
    return jax.jit(scan, donate_argnums=(0, 1), static_argnames=("negative",))


sgns_step = jax.jit(sgns_update, donate_argnums=(0, 1), static_argnames=("negative",))
# One call runs several small steps in order: small batches stay close to word2vec.c's
# sequential SGD, and one dispatch per call gains ~20% over one per step on CPU (64 steps a
# call train 5-8 % faster than 16, to identical vectors).
sgns_steps = scanned_steps(sgns_update, Batch)


def cbow_update(syn0_VD: jax.Array, syn1_VD: jax.Array, batch: StreamBatch,
                negative: int) -> tuple[jax.Array, jax.Array]:
    """(syn0_VD, syn1_VD) after one CBOW step on a `StreamBatch`: the same update as
    `sgns_update` on the batch's centres with their valid slots as inputs."""
    stream_P, valid_NC, noise_GK, lr = batch
    count, slots = valid_NC.shape
    window, offsets = slots // 2, vocab_lib.context_offsets(slots // 2).tolist()
    if stream_P.shape != (count + 2 * window,):
        raise DlxError(f"StreamBatch.stream_P must have N + 2 * window = {count + 2 * window} "
                       f"tokens for valid_NC of shape {valid_NC.shape}; got {stream_P.shape}")
    # Outside the corpus: row 0, read with weight 0 and added 0.
    stream_P = jnp.maximum(stream_P, 0)
    rows_PD = syn0_VD[stream_P]
    weight_NC = valid_NC.astype(syn0_VD.dtype)
    # Slot c of centre n is stream row n + window + offsets[c]: a static slice per slot.
    h_ND = sum(weight_NC[:, c, None] * rows_PD[window + offset:window + offset + count]
               for c, offset in enumerate(offsets))
    h_ND = h_ND / jnp.maximum(weight_NC.sum(axis=1), 1)[:, None]
    # A centre without context has h = 0, so it changes neither table.
    dh_ND, syn0_VD, syn1_VD = output_update(h_ND, syn0_VD, syn1_VD,
                                            stream_P[window:window + count, None], noise_GK, lr,
                                            negative)
    # Stream row p takes dh of every centre p - window - offsets[c] whose slot c is valid.
    # Slicing padded copies keeps this one vectorised loop (padding each term is ~15x slower).
    pad = ((2 * window, 2 * window), (0, 0))
    dh_pad, weight_pad = jnp.pad(dh_ND, pad), jnp.pad(weight_NC, pad)
    span = stream_P.shape[0]
    d_rows_PD = sum(weight_pad[window - offset:window - offset + span, c, None]
                    * dh_pad[window - offset:window - offset + span]
                    for c, offset in enumerate(offsets))
    return syn0_VD.at[stream_P].add(d_rows_PD, mode="promise_in_bounds"), syn1_VD


cbow_steps = scanned_steps(cbow_update, StreamBatch)


def _chunks(sentence_T: np.ndarray, chunk_tokens: int) -> Iterator[tuple[int, int]]:
    """(start, stop) token ranges of about chunk_tokens each, cut only between sentences."""
    starts = np.flatnonzero(np.diff(sentence_T, prepend=-1))
    start, size = 0, sentence_T.shape[0]
    while start < size:
        cut = int(np.searchsorted(starts, start + chunk_tokens))
        stop = int(starts[cut]) if cut < starts.shape[0] else size
        yield start, stop
        start = stop


def examples(ids_T: np.ndarray, sentence_T: np.ndarray, keep_V: np.ndarray,
             rng: np.random.Generator, *, sg: bool, window: int,
             chunk_tokens: int = CHUNK_TOKENS) -> Iterator[tuple[np.ndarray, ...]]:
    """(inputs_NC, targets_NT, rows_N) per chunk of one epoch over the encoded corpus: the
    subsampled centres with a context, as `Batch` rows, and their rows in ids_T."""
    for begin, end in _chunks(sentence_T, chunk_tokens):
        ids_t = ids_T[begin:end]
        kept_T = vocab_lib.subsample(rng, ids_t, keep_V)
        rows_T = np.flatnonzero(kept_T) + begin
        ids_t, sentence_t = ids_t[kept_T], sentence_T[begin:end][kept_T]
        windows_T = vocab_lib.dynamic_windows(rng, ids_t.shape[0], window)
        centres_N, contexts_NC = vocab_lib.centre_contexts(sentence_t, windows_T, window)
        centre_N1 = ids_t[centres_N][:, None]
        context_NC = np.where(contexts_NC >= 0, ids_t[contexts_NC], -1).astype(np.int32)
        yield ((centre_N1, context_NC) if sg else (context_NC, centre_N1)) + (rows_T[centres_N],)


def draw_noise(rng: np.random.Generator, noise_cdf_V: np.ndarray,
               shape: tuple[int, ...]) -> np.ndarray:
    """int32 array of `shape`: words drawn from the cumulative noise distribution noise_cdf_V."""
    return np.minimum(np.searchsorted(noise_cdf_V, rng.random(shape), side="right"),
                      noise_cdf_V.shape[0] - 1).astype(np.int32)


def check_blocks(batch_words: int, block: int) -> None:
    """A one-line error unless a step's centres split into whole blocks."""
    if batch_words % block:
        raise DlxError(f"batch_words={batch_words} must be a multiple of block={block}")


def step_schedule(rng: np.random.Generator, noise_cdf_V: np.ndarray, done_N: np.ndarray,
                  final: bool, *, batch_words: int, block: int, shared_negatives: int,
                  total_words: int, alpha: float,
                  min_alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(firsts_S, noise_SGK, lr_S, words_done_S) of the steps cut from pending example rows whose
    corpus positions are done_N: each whole batch_words rows, and when `final` the rest too (the
    caller pads it). words_done counts corpus tokens up to the step's last real row."""
    size = done_N.shape[0]
    count = -(-size // batch_words) if final else size // batch_words
    noise_SGK = draw_noise(rng, noise_cdf_V, (count, batch_words // block, shared_negatives))
    firsts_S = np.arange(count) * batch_words
    lr_S = learning_rate(done_N[firsts_S], total_words, alpha, min_alpha).astype(np.float32)
    words_done_S = done_N[np.minimum(firsts_S + batch_words, size) - 1] + 1
    return firsts_S, noise_SGK, lr_S, words_done_S


def batches(ids_T: np.ndarray, sentence_T: np.ndarray, keep_V: np.ndarray,
            noise_V: np.ndarray, rng: np.random.Generator, *, sg: bool, window: int,
            epochs: int, batch_words: int, block: int, shared_negatives: int, alpha: float,
            min_alpha: float) -> Iterator[tuple[Batch, int]]:
    """(batch, words_done) for every step of training on the encoded corpus (ids_T,
    sentence_T); words_done counts corpus tokens (before subsampling) up to the batch's end."""
    check_blocks(batch_words, block)
    corpus_words = ids_T.shape[0]
    schedule = functools.partial(
        step_schedule, rng, np.cumsum(noise_V), batch_words=batch_words, block=block,
        shared_negatives=shared_negatives, total_words=epochs * corpus_words, alpha=alpha,
        min_alpha=min_alpha)
    input_pad = 0 if sg else -1  # a skip-gram padding example reads row 0 and adds 0 to it
    pending: list[tuple[np.ndarray, ...]] = []
    pending_size = 0

    def emit(final: bool) -> Iterator[tuple[Batch, int]]:
        nonlocal pending, pending_size
        inputs_NC, targets_NT, done_N = (np.concatenate(parts) for parts in zip(*pending))
        firsts_S, noise_SGK, lr_S, words_done_S = schedule(done_N, final)
        pad = firsts_S.shape[0] * batch_words - pending_size  # > 0 only for the final padding
        if pad > 0:
            inputs_NC = np.pad(inputs_NC, ((0, pad), (0, 0)), constant_values=input_pad)
            targets_NT = np.pad(targets_NT, ((0, pad), (0, 0)), constant_values=-1)
        for first, noise_GK, lr, words_done in zip(firsts_S, noise_SGK, lr_S, words_done_S):
            rows = slice(first, first + batch_words)
            yield Batch(inputs_NC[rows], targets_NT[rows], noise_GK, lr), int(words_done)
        taken = min(firsts_S.shape[0] * batch_words, pending_size)
        pending = [(inputs_NC[taken:pending_size], targets_NT[taken:pending_size],
                    done_N[taken:])]
        pending_size -= taken

    for epoch in range(epochs):
        for inputs_NC, targets_NT, rows_N in examples(ids_T, sentence_T, keep_V, rng, sg=sg,
                                                      window=window):
            pending.append((inputs_NC, targets_NT, rows_N + epoch * corpus_words))
            pending_size += rows_N.shape[0]
            if pending_size >= batch_words:
                yield from emit(final=False)
    if pending_size:
        yield from emit(final=True)


def stream_batches(ids_T: np.ndarray, sentence_T: np.ndarray, keep_V: np.ndarray,
                   noise_V: np.ndarray, rng: np.random.Generator, *, window: int, epochs: int,
                   batch_words: int, block: int, shared_negatives: int, alpha: float,
                   min_alpha: float) -> Iterator[tuple[StreamBatch, int]]:
    """(batch, words_done) for every CBOW step: consecutive stretches of batch_words tokens of
    the subsampled stream (`StreamBatch`); words_done as in `batches`."""
    check_blocks(batch_words, block)
    corpus_words = ids_T.shape[0]
    schedule = functools.partial(
        step_schedule, rng, np.cumsum(noise_V), batch_words=batch_words, block=block,
        shared_negatives=shared_negatives, total_words=epochs * corpus_words, alpha=alpha,
        min_alpha=min_alpha)
    before = np.full(window, -1, np.int32)  # the stream's tokens just before the pending ones
    pending: list[tuple[np.ndarray, ...]] = []
    pending_size = 0

    def emit(final: bool) -> Iterator[tuple[StreamBatch, int]]:
        nonlocal before, pending, pending_size
        ids_L, valid_LC, done_L = (np.concatenate(parts) for parts in zip(*pending))
        firsts_S, noise_SGK, lr_S, words_done_S = schedule(done_L, final)
        tail = max(firsts_S.shape[0] * batch_words - pending_size, 0)  # the final padding
        stream = np.concatenate([before, ids_L, np.full(tail + window, -1, np.int32)])
        valid_LC = np.pad(valid_LC, ((0, tail), (0, 0)))
        for first, noise_GK, lr, words_done in zip(firsts_S, noise_SGK, lr_S, words_done_S):
            yield (StreamBatch(stream[first:first + batch_words + 2 * window],
                               valid_LC[first:first + batch_words], noise_GK, lr),
                   int(words_done))
        taken = min(firsts_S.shape[0] * batch_words, pending_size)
        before = stream[taken:taken + window]
        pending = [(ids_L[taken:], valid_LC[taken:pending_size], done_L[taken:])]
        pending_size -= taken

    for epoch in range(epochs):
        for begin, end in _chunks(sentence_T, CHUNK_TOKENS):
            kept_t = vocab_lib.subsample(rng, ids_T[begin:end], keep_V)
            sentence_t = sentence_T[begin:end][kept_t]
            windows_t = vocab_lib.dynamic_windows(rng, sentence_t.shape[0], window)
            valid_tC = vocab_lib.context_mask(sentence_t, windows_t, window)
            pending.append((ids_T[begin:end][kept_t].astype(np.int32), valid_tC,
                            np.flatnonzero(kept_t) + begin + epoch * corpus_words))
            pending_size += sentence_t.shape[0]
            if pending_size >= batch_words:
                yield from emit(final=False)
    if pending_size:
        yield from emit(final=True)


def stacked(steps: Iterator[tuple[Batch, int]], size: int) -> Iterator[tuple[Batch, int]]:
    """(batches_S, words_done): `size` consecutive batches (`Batch`, `StreamBatch` or another
    NamedTuple with `noise_GK` and `lr`) of `steps` stacked on a new leading axis; the last
    stack is filled with empty batches (zeros, no targets, lr 0), which change nothing."""
    group: list[Batch] = []
    words_done = 0
    for batch, words_done in steps:
        group.append(batch)
        if len(group) == size:
            yield type(batch)(*(np.stack(field) for field in zip(*group))), words_done
            group = []
    if group:
        first = group[0]
        empty = type(first)(*(np.zeros_like(field) for field in first))._replace(
            noise_GK=first.noise_GK)
        if "targets_NT" in empty._fields:
            empty = empty._replace(targets_NT=np.full_like(first.targets_NT, -1))
        group += [empty] * (size - len(group))
        yield type(first)(*(np.stack(field) for field in zip(*group))), words_done


def prefetched(items: Iterator[tuple[Batch, int]],
               depth: int = PREFETCH) -> Iterator[tuple[Batch, int]]:
    """The (batch, count) items of `items`, each batch put on the device by a background thread
    up to `depth` items ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for batch, count in items:
                if stop.is_set():
                    return
                ready.put((jax.device_put(batch), count))
            ready.put(done)
        except BaseException as error:  # re-raised in the consumer
            ready.put(error)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # a producer blocked on a full queue needs room to see `stop`
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)


def call_shapes(sg: bool, steps: int, batch_words: int, window: int, block: int,
                shared_negatives: int) -> Batch | StreamBatch:
    """The shapes of one call's stacked batches: `Batch` for skip-gram, `StreamBatch` for CBOW."""
    def shape(dtype, *dims):
        return jax.ShapeDtypeStruct((steps, *dims), dtype)
    noise, lr = shape(jnp.int32, batch_words // block, shared_negatives), shape(jnp.float32)
    if sg:
        return Batch(shape(jnp.int32, batch_words, 1), shape(jnp.int32, batch_words, 2 * window),
                     noise, lr)
    return StreamBatch(shape(jnp.int32, batch_words + 2 * window),
                       shape(jnp.bool_, batch_words, 2 * window), noise, lr)


def train(sentences: Sequence[Sequence[str]], *, sg: bool = True, dim: int = 100,
          window: int = 5, negative: int = 5, min_count: int = 5, sample: float = 1e-3,
          epochs: int = 5, alpha: float | None = None, min_alpha: float = 1e-4, seed: int = 0,
          batch_words: int = 256, block: int = 32, shared_negatives: int | None = None,
          steps_per_call: int = 64, ns_exponent: float = 0.75, max_vocab: int = 0,
          progress: bool = True) -> tuple[vocab_lib.Vocab, np.ndarray]:
    """(vocab, vectors_VD float32): word2vec vectors (syn0) of the words seen min_count times.

    alpha defaults to gensim's 0.025 for skip-gram and 0.05 for CBOW. The same seed gives the
    same vectors. batch_words, block and shared_negatives: see the module docstring;
    shared_negatives defaults to 32 for skip-gram (~6 targets per centre) and 8 for CBOW (1
    target), so a drawn noise row takes 20-30 pairs' worth of update at once. Each jitted call
    runs steps_per_call steps.
    """
    if shared_negatives is None:
        shared_negatives = 32 if sg else 8
    vocab_lib.check_arguments("word2vec.train", sentences, dim=dim, window=window,
                              negative=negative, epochs=epochs, batch_words=batch_words,
                              block=block, shared_negatives=shared_negatives,
                              steps_per_call=steps_per_call)
    check_blocks(batch_words, block)
    vocab = vocab_lib.vocabulary(sentences, min_count, max_vocab)
    # The step compiles while the corpus is encoded.
    table_shape = jax.ShapeDtypeStruct((len(vocab), dim), jnp.float32)
    step_batch = call_shapes(sg, steps_per_call, batch_words, window, block, shared_negatives)
    compiler = concurrent.futures.ThreadPoolExecutor(1)
    compiling = compiler.submit(lambda: (sgns_steps if sg else cbow_steps).lower(
        table_shape, table_shape, step_batch, negative=negative).compile())
    compiler.shutdown(wait=False)
    alpha = (0.025 if sg else 0.05) if alpha is None else alpha
    rng = np.random.default_rng(seed)
    syn0_VD, syn1_VD = (jnp.asarray(table) for table in init_tables(rng, len(vocab), dim))
    ids_T, sentence_T = vocab.encode_corpus(sentences)
    corpus = (ids_T, sentence_T, vocab_lib.keep_probabilities(vocab.counts, sample),
              vocab_lib.negative_distribution(vocab.counts, ns_exponent), rng)
    settings = dict(window=window, epochs=epochs, batch_words=batch_words, block=block,
                    shared_negatives=shared_negatives, alpha=alpha, min_alpha=min_alpha)
    steps = (batches(*corpus, sg=True, **settings) if sg
             else stream_batches(*corpus, **settings))
    run = compiling.result()
    total, words_shown = epochs * ids_T.shape[0], 0
    with tqdm.tqdm(total=total, unit="word", unit_scale=True, disable=not progress,
                   desc="word2vec " + ("skip-gram" if sg else "CBOW")) as bar:
        for batches_S, words_done in prefetched(stacked(steps, steps_per_call)):
            syn0_VD, syn1_VD = run(syn0_VD, syn1_VD, batches_S)
            bar.update(words_done - words_shown)
            words_shown = words_done
        bar.update(total - words_shown)
    return vocab, np.asarray(syn0_VD)

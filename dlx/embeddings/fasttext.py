"""fastText (skip-gram and CBOW over character n-grams, negative sampling) as gensim 4 trains it.

A word w's input rows are its own row and one row per character n-gram of `<w>` (n in [min_n,
max_n], counted in unicode characters), the n-gram's row being fastText's FNV-1a hash of its
UTF-8 bytes modulo `bucket`: gensim's `ft_ngram_hashes`, repeats kept. All rows live in one
input table: the V word rows (gensim's `vectors_vocab`), then the n-gram rows (`vectors_ngrams`).
As in gensim's `fasttext_inner.pyx`, an example's hidden vector h is:
- skip-gram: the centre's word row plus its n-gram rows, over its number of n-grams (gensim's
  divisor; fastText's is n + 1; a word without n-grams: its word row alone);
- CBOW: the sum of every row of every context word over the number of rows (cbow_mean).
h's gradient goes whole to each of those rows, a row repeated in a word once per repeat. All
input rows start uniform in ±1/dim, the output table (syn1) at zero, both as in gensim.
Everything else is word2vec's and reused from `dlx.embeddings.word2vec`: output table and
negative sampling (`output_update`), subsampling, dynamic windows, linear lr decay and batches
(`batches`), and its differences from the C loop (module docstring there): steps of
`batch_words` centres whose updates are summed, skip-gram updated per centre not per pair,
noise words shared by a block, exact σ (gensim skips skip-gram scores beyond ±8 and clips CBOW's).

The vectors (`FastTextVectors`) of vocabulary words are gensim 4's `wv.vectors`: (word row + Σ
its n-gram rows) / (n + 1); an unseen word's is the mean of its n-gram rows (zero without one).

Where dlx differs from gensim besides:
- Only the n-gram rows some vocabulary word has are stored and trained (U of `bucket`: 67k
  of 2M for a 10k-word vocabulary). The others never move from their random init, which gensim
  allocates as (bucket, dim) (800 MB by default); dlx reads them as zero, so an unseen word's
  vector lacks gensim's share of init noise and saved models are small.
- The host expands each step's distinct words into one flat list of rows (`SubwordBatch`) of
  fixed capacity: a row is read and updated once per step and word (its gradients summed), not
  once per example, and a step whose words need more rows is split into consecutive steps.
"""

from __future__ import annotations

import functools
import math
import os
import pathlib
from typing import Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from dlx.embeddings import vocab as vocab_lib
from dlx.embeddings import word2vec
from dlx.embeddings.vectors import KeyedVectors, OOVError
from dlx.errors import DlxError
from dlx.train.outputs import write_npz

FNV_OFFSET = 2166136261  # fastText's 32-bit FNV-1a
FNV_PRIME = 16777619
MAX_UTF8_BYTES = 4
MODEL_FILE = "fasttext.npz"


def check_ngrams(min_n: int, max_n: int, bucket: int) -> None:
    """A one-line `DlxError` unless 1 <= min_n <= max_n and bucket >= 1, all integers."""
    if not all(isinstance(value, (int, np.integer)) for value in (min_n, max_n, bucket)):
        raise DlxError(f"fastText needs integer min_n, max_n and bucket; got min_n={min_n!r}, "
                       f"max_n={max_n!r}, bucket={bucket!r}")
    if not 1 <= min_n <= max_n:
        raise DlxError(f"fastText needs 1 <= min_n <= max_n (n-gram lengths in characters); "
                       f"got min_n={min_n}, max_n={max_n}")
    if bucket < 1:
        raise DlxError(f"fastText needs bucket >= 1 n-gram rows, got bucket={bucket} (for "
                       f"vectors without n-grams use word2vec.train)")


def ngram_hashes(words: Sequence[str], min_n: int, max_n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes_H uint32, counts_W int64): fastText's FNV-1a hash of each character n-gram of
    each `<word>`, word by word in gensim's order (by start, then length), and each word's count."""
    encoded = [f"<{word}>".encode() for word in words]
    bytes_B = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    # fastText hashes each byte as a (signed) char widened to uint32, as gensim does.
    widened_B = bytes_B.view(np.int8).astype(np.uint32)
    char_starts_C = np.flatnonzero((bytes_B & 0xC0) != 0x80)  # not a UTF-8 continuation byte
    bounds_C = np.append(char_starts_C, bytes_B.shape[0])
    word_ends_W = np.cumsum(np.fromiter(map(len, encoded), np.int64, count=len(encoded)))
    word_C = np.searchsorted(word_ends_W, char_starts_C, side="right")
    chars_W = np.bincount(word_C, minlength=len(words))
    chars = char_starts_C.shape[0]
    position_C = np.arange(chars) - (np.cumsum(chars_W) - chars_W)[word_C]
    left_C = chars_W[word_C] - position_C  # characters from this one to the word's end
    hash_C = np.full(chars, FNV_OFFSET, dtype=np.uint32)
    hashes, kept = [], []
    for n in range(1, max_n + 1):  # hash_C: the n-gram of n characters starting at each one
        inside_C = left_C >= n
        last_C = np.minimum(np.arange(chars) + n - 1, chars - 1)
        begin_C, end_C = bounds_C[last_C], bounds_C[last_C + 1]
        for offset in range(MAX_UTF8_BYTES):
            byte_C = begin_C + offset
            more_C = inside_C & (byte_C < end_C)
            mixed_C = (hash_C ^ widened_B[np.where(more_C, byte_C, 0)]) * np.uint32(FNV_PRIME)
            hash_C = np.where(more_C, mixed_C, hash_C)
        if n >= min_n:
            # gensim (as fastText) skips the 1-grams "<" and ">".
            kept.append(inside_C & ((position_C > 0) & (left_C > 1) if n == 1 else True))
            hashes.append(hash_C)
    hashes_CN, kept_CN = np.stack(hashes, axis=1), np.stack(kept, axis=1)
    counts_W = np.bincount(word_C, weights=kept_CN.sum(axis=1), minlength=len(words))
    return hashes_CN[kept_CN], counts_W.astype(np.int64)


def ngram_buckets(words: Sequence[str], min_n: int, max_n: int,
                  bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """(buckets_H int64, counts_W int64): gensim's `ft_ngram_hashes(word, min_n, max_n,
    bucket)` of all words, concatenated, and how many each word has."""
    hashes_H, counts_W = ngram_hashes(words, min_n, max_n)
    return hashes_H.astype(np.int64) % bucket, counts_W


def segment_sums(rows_HD: np.ndarray, counts_W: np.ndarray) -> np.ndarray:
    """(W, D): the sums of consecutive runs of counts_W[w] rows of rows_HD (zero for none)."""
    sums_WD = np.zeros((counts_W.shape[0], rows_HD.shape[1]), dtype=rows_HD.dtype)
    filled_W = counts_W > 0
    if filled_W.any():
        starts_W = np.cumsum(counts_W) - counts_W
        sums_WD[filled_W] = np.add.reduceat(rows_HD, starts_W[filled_W], axis=0)
    return sums_WD


class Subwords(NamedTuple):
    """Input-table rows of each vocabulary word: rows_R[starts_V[w]:][:lens_V[w]] (int32) is
    [w, V + the row of each of its n-grams among the used buckets]; buckets_U (int64, sorted):
    the bucket of n-gram row V + u."""
    rows_R: np.ndarray
    starts_V: np.ndarray
    lens_V: np.ndarray
    buckets_U: np.ndarray

    @classmethod
    def build(cls, words: Sequence[str], min_n: int, max_n: int, bucket: int) -> Subwords:
        """The rows of `words`, with one n-gram row per bucket any of them uses."""
        buckets_H, counts_V = ngram_buckets(words, min_n, max_n, bucket)
        buckets_U, ngram_row_H = np.unique(buckets_H, return_inverse=True)
        lens_V = counts_V + 1
        starts_V = np.cumsum(lens_V) - lens_V
        rows_R = np.empty(int(lens_V.sum()), dtype=np.int32)
        is_word_R = np.zeros(rows_R.shape[0], dtype=bool)
        is_word_R[starts_V] = True
        rows_R[is_word_R] = np.arange(len(words))
        rows_R[~is_word_R] = len(words) + ngram_row_H
        return cls(rows_R, starts_V, lens_V, buckets_U)


class SubwordBatch(NamedTuple):
    """One step's examples with their input words expanded to input-table rows, once per distinct
    word of the step: words_NC (int32: each input slot's distinct word, -1 = empty), rows_M
    (int32 rows, -1 = padding) of distinct word word_M (int32, ascending), scale_N (float32: h is
    the sum of an example's rows times its scale), targets_NT, noise_GK, lr as `word2vec.Batch`."""
    words_NC: np.ndarray
    rows_M: np.ndarray
    word_M: np.ndarray
    scale_N: np.ndarray
    targets_NT: np.ndarray
    noise_GK: np.ndarray
    lr: np.ndarray


def row_capacity(subwords: Subwords, weights_V: np.ndarray, *, sg: bool, window: int,
                 batch_words: int) -> int:
    """Rows of a `SubwordBatch`: the expected rows of the distinct words among the tokens that
    batch_words consecutive centres span (CBOW's contexts reach window tokens further), were they
    drawn independently by weights_V; at least the most one example can need. Text repeats its
    words more than that, so few steps need more."""
    p_V = weights_V / max(float(weights_V.sum()), 1e-30)
    tokens = batch_words + (0 if sg else 2 * window)
    distinct_rows = float(subwords.lens_V @ -np.expm1(tokens * np.log1p(-p_V)))
    largest = int(subwords.lens_V.max()) * (1 if sg else 2 * window)
    return max(64 * math.ceil(distinct_rows / 64), largest)


def expand(batch: word2vec.Batch, subwords: Subwords, capacity: int,
           sg: bool) -> Iterator[SubwordBatch]:
    """The batch (of word ids) as one `SubwordBatch` of `capacity` rows or, when its distinct
    words need more, as several: its examples halved in order until each part fits (the other
    examples' targets emptied)."""
    inputs_NC, targets_NT, noise_GK, lr = batch
    live_NC = (inputs_NC >= 0) & (targets_NT >= 0).any(axis=1, keepdims=True)
    rows_N = np.where(live_NC, subwords.lens_V[inputs_NC], 0).sum(axis=1)
    divisor_N = np.maximum(rows_N - 1 if sg else rows_N, 1)  # skip-gram: the n-gram count
    scale_N = np.float32(1) / divisor_N.astype(np.float32)
    parts = [live_NC]
    while parts:
        part_NC = parts.pop()
        distinct_J, word_K = np.unique(inputs_NC[part_NC], return_inverse=True)
        lens_J = subwords.lens_V[distinct_J]
        total = int(lens_J.sum())
        examples_E = np.flatnonzero(part_NC.any(axis=1))
        if total > capacity and examples_E.shape[0] > 1:
            first_half_N = np.arange(inputs_NC.shape[0]) < examples_E[examples_E.shape[0] // 2]
            parts += [part_NC & ~first_half_N[:, None], part_NC & first_half_N[:, None]]
            continue
        words_NC = np.full(inputs_NC.shape, -1, dtype=np.int32)
        words_NC[part_NC] = word_K
        ends_J = np.cumsum(lens_J)
        offsets_M = np.repeat(subwords.starts_V[distinct_J] - ends_J + lens_J,
                              lens_J) + np.arange(total)
        rows_M = np.full(capacity, -1, dtype=np.int32)
        rows_M[:total] = subwords.rows_R[offsets_M]
        word_M = np.full(capacity, -1, dtype=np.int32)
        word_M[:total] = np.repeat(np.arange(distinct_J.shape[0]), lens_J)
        part_targets_NT = np.where(part_NC.any(axis=1, keepdims=True), targets_NT, -1)
        yield SubwordBatch(words_NC, rows_M, word_M, scale_N, part_targets_NT.astype(np.int32),
                           noise_GK, lr)


def hidden(table_XD: jax.Array, batch: SubwordBatch) -> jax.Array:
    """(N, D): h of each example, the sum of its words' rows of table_XD times its scale."""
    words_NC, rows_M, word_M, scale_N = batch[:4]
    distinct = words_NC.size  # at most one distinct word per input slot
    valid_M = rows_M >= 0
    sums_JD = jax.ops.segment_sum(table_XD[jnp.where(valid_M, rows_M, 0)],
                                  jnp.where(valid_M, word_M, distinct), num_segments=distinct,
                                  indices_are_sorted=True)
    valid_NC = words_NC >= 0
    sums_NCD = sums_JD[jnp.where(valid_NC, words_NC, 0)]
    return jnp.einsum("ncd,nc->nd", sums_NCD, valid_NC.astype(sums_JD.dtype)) * scale_N[:, None]


def subword_loss(table_XD: jax.Array, syn1_VD: jax.Array, batch: SubwordBatch,
                 negative: int) -> jax.Array:
    """The batch's summed negative-sampling loss (its lr unused)."""
    return word2vec.sgns_loss_of_hidden(hidden(table_XD, batch), syn1_VD, batch.targets_NT,
                                        batch.noise_GK, negative)


def subword_update(table_XD: jax.Array, syn1_VD: jax.Array, batch: SubwordBatch,
                   negative: int) -> tuple[jax.Array, jax.Array]:
    """(table_XD, syn1_VD) after one SGD step: syn1 as in word2vec, and each input row of an
    example moved by -lr * the gradient of its h (gensim's rule, whatever h's scale)."""
    words_NC, rows_M, word_M, _, targets_NT, noise_GK, lr = batch
    dh_ND, table_XD, syn1_VD = word2vec.output_update(hidden(table_XD, batch), table_XD, syn1_VD,
                                                      targets_NT, noise_GK, lr, negative)
    distinct, dim = words_NC.size, dh_ND.shape[-1]
    dh_NCD = jnp.broadcast_to(dh_ND[:, None, :], (*words_NC.shape, dim))
    dh_JD = jax.ops.segment_sum(dh_NCD.reshape(-1, dim),
                                jnp.where(words_NC >= 0, words_NC, distinct).reshape(-1),
                                num_segments=distinct)
    rows_M = jnp.where(rows_M >= 0, rows_M, table_XD.shape[0])  # padding: dropped
    return table_XD.at[rows_M].add(dh_JD[word_M], mode="drop"), syn1_VD


subword_step = jax.jit(subword_update, donate_argnums=(0, 1), static_argnames=("negative",))
subword_steps = word2vec.scanned_steps(subword_update, SubwordBatch)


class FastTextVectors(KeyedVectors):
    """fastText vectors: `vectors_VD` of the vocabulary `words` composed as gensim 4's
    `wv.vectors`, and vectors for any other word from its character n-grams (`oov_vector`);
    `word in vectors` still means "in the vocabulary".

    vectors_vocab_VD: the word rows; buckets_U (sorted, distinct, in [0, bucket)) and
    vectors_ngrams_UD: the stored n-gram rows, every other bucket's row being zero; syn1_VD:
    the output vectors (gensim's `syn1neg`) when training made them, else None.
    """

    def __init__(self, words: Sequence[str], vectors_vocab_VD: np.ndarray,
                 buckets_U: np.ndarray, vectors_ngrams_UD: np.ndarray, *, min_n: int,
                 max_n: int, bucket: int, syn1_VD: np.ndarray | None = None):
        check_ngrams(min_n, max_n, bucket)
        vectors_vocab_VD = np.asarray(vectors_vocab_VD, dtype=np.float32)
        vectors_ngrams_UD = np.asarray(vectors_ngrams_UD, dtype=np.float32)
        buckets_U = np.asarray(buckets_U, dtype=np.int64)
        if (vectors_vocab_VD.ndim != 2 or vectors_ngrams_UD.ndim != 2
                or vectors_ngrams_UD.shape != (buckets_U.shape[0], vectors_vocab_VD.shape[1])):
            raise DlxError(f"FastTextVectors needs (V, D) word rows and (U, D) n-gram rows for U "
                           f"buckets; got {vectors_vocab_VD.shape}, {vectors_ngrams_UD.shape} "
                           f"and {buckets_U.shape[0]} buckets")
        if buckets_U.shape[0] and (np.any(np.diff(buckets_U) <= 0) or buckets_U[0] < 0
                                   or buckets_U[-1] >= bucket):
            raise DlxError(f"FastTextVectors needs distinct buckets in ascending order within "
                           f"[0, {bucket}); got {buckets_U[:5].tolist()}...")
        self.min_n, self.max_n, self.bucket = int(min_n), int(max_n), int(bucket)
        self.buckets_U = buckets_U
        self.vectors_ngrams_UD = vectors_ngrams_UD
        self.vectors_vocab_VD = vectors_vocab_VD
        buckets_H, counts_W = ngram_buckets(list(words), self.min_n, self.max_n, self.bucket)
        sums_WD = segment_sums(self.ngram_rows(buckets_H), counts_W)
        if sums_WD.shape[0] != vectors_vocab_VD.shape[0]:
            raise DlxError(f"vectors have shape {vectors_vocab_VD.shape} for {len(sums_WD)} "
                           f"words; expected ({len(sums_WD)}, D)")
        divisor_W1 = (counts_W + 1).astype(np.float32)[:, None]
        super().__init__(words, (vectors_vocab_VD + sums_WD) / divisor_W1)
        if syn1_VD is not None and np.shape(syn1_VD) != vectors_vocab_VD.shape:
            raise DlxError(f"syn1_VD has shape {np.shape(syn1_VD)}; expected "
                           f"{vectors_vocab_VD.shape}, one output vector per word")
        self.syn1_VD = None if syn1_VD is None else np.asarray(syn1_VD, dtype=np.float32)

    @classmethod
    def from_tables(cls, words: Sequence[str], vectors_vocab_VD: np.ndarray,
                    vectors_ngrams_BD: np.ndarray, *, min_n: int, max_n: int) -> FastTextVectors:
        """From a whole (bucket, D) n-gram table, e.g. gensim's `wv.vectors_ngrams`."""
        bucket = np.shape(vectors_ngrams_BD)[0]
        return cls(words, vectors_vocab_VD, np.arange(bucket), vectors_ngrams_BD, min_n=min_n,
                   max_n=max_n, bucket=bucket)

    def __repr__(self) -> str:
        return (f"FastTextVectors({len(self)} words, {self.vector_size} dims, "
                f"{self.buckets_U.shape[0]} of {self.bucket} n-gram rows, "
                f"n {self.min_n}..{self.max_n})")

    def ngram_rows(self, buckets_H: np.ndarray) -> np.ndarray:
        """(H, D) float32: the row of each bucket of buckets_H (zero where none is stored)."""
        count, dim = self.vectors_ngrams_UD.shape
        if not count:
            return np.zeros((np.shape(buckets_H)[0], dim), dtype=np.float32)
        slot_H = np.minimum(np.searchsorted(self.buckets_U, buckets_H), count - 1)
        stored_H = self.buckets_U[slot_H] == buckets_H
        return np.where(stored_H[:, None], self.vectors_ngrams_UD[slot_H], np.float32(0))

    def oov_vector(self, word: str) -> np.ndarray:
        """(D,) float32: the mean of the rows of `word`'s n-grams, zero if it has none (gensim)."""
        if not isinstance(word, str):
            raise OOVError(word, len(self))
        buckets_H, _ = ngram_buckets([word], self.min_n, self.max_n, self.bucket)
        if not buckets_H.shape[0]:
            return np.zeros(self.vector_size, dtype=np.float32)
        return self.ngram_rows(buckets_H).sum(axis=0) / np.float32(buckets_H.shape[0])

    def save(self, directory: str | os.PathLike) -> None:
        """Writes the whole model (words, word and n-gram rows, min_n, max_n, bucket, syn1 if
        any) to `directory`/fasttext.npz, atomically; `load` reads it back."""
        encoded = [word.encode() for word in self.words]
        output = {} if self.syn1_VD is None else {"syn1": self.syn1_VD}
        write_npz(pathlib.Path(directory) / MODEL_FILE, dict(
            **output, words=np.frombuffer(b"".join(encoded), dtype=np.uint8),
            word_bytes=np.fromiter(map(len, encoded), np.int64, count=len(encoded)),
            vectors_vocab=self.vectors_vocab_VD, buckets=self.buckets_U,
            vectors_ngrams=self.vectors_ngrams_UD,
            ngrams=np.array([self.min_n, self.max_n, self.bucket], dtype=np.int64)))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> FastTextVectors:
        """The model `save` wrote to `directory`."""
        path = pathlib.Path(directory) / MODEL_FILE
        if not path.is_file():
            raise DlxError(f"{path}: no such file; expected a model FastTextVectors.save wrote")
        with np.load(path, allow_pickle=False) as stored:
            missing = {"words", "word_bytes", "vectors_vocab", "buckets", "vectors_ngrams",
                       "ngrams"} - set(stored.files)
            if missing:
                raise DlxError(f"{path} lacks {', '.join(sorted(missing))}; expected a model "
                               f"FastTextVectors.save wrote")
            encoded = stored["words"].tobytes()
            ends_W = np.cumsum(stored["word_bytes"])
            words = [encoded[end - size:end].decode()
                     for end, size in zip(ends_W.tolist(), stored["word_bytes"].tolist())]
            min_n, max_n, bucket = (int(value) for value in stored["ngrams"])
            return cls(words, stored["vectors_vocab"], stored["buckets"],
                       stored["vectors_ngrams"], min_n=min_n, max_n=max_n, bucket=bucket,
                       syn1_VD=stored["syn1"] if "syn1" in stored.files else None)


def train(sentences: Sequence[Sequence[str]], *, sg: bool = True, dim: int = 100,
          window: int = 5, negative: int = 5, min_count: int = 5, sample: float = 1e-3,
          epochs: int = 5, alpha: float | None = None, min_alpha: float = 1e-4, min_n: int = 3,
          max_n: int = 6, bucket: int = 2_000_000, seed: int = 0, batch_words: int = 256,
          block: int = 32, shared_negatives: int | None = None, steps_per_call: int = 64,
          ns_exponent: float = 0.75, max_vocab: int = 0,
          progress: bool = True) -> FastTextVectors:
    """fastText vectors of the words seen min_count times (their output vectors in syn1_VD),
    and of any other word by its character n-grams.

    Defaults are gensim's `FastText`'s, but alpha: 0.025 for skip-gram and 0.05 for CBOW, as
    `word2vec.train`, whose batch_words, block, shared_negatives and steps_per_call these are.
    The same seed gives the same vectors.
    """
    check_ngrams(min_n, max_n, bucket)
    if shared_negatives is None:
        shared_negatives = 32 if sg else 8
    vocab_lib.check_arguments("fasttext.train", sentences, dim=dim, window=window,
                             negative=negative, epochs=epochs, batch_words=batch_words,
                             block=block, shared_negatives=shared_negatives,
                             steps_per_call=steps_per_call)
    vocab = vocab_lib.vocabulary(sentences, min_count, max_vocab)
    alpha = (0.025 if sg else 0.05) if alpha is None else alpha
    rng = np.random.default_rng(seed)
    subwords = Subwords.build(vocab.words, min_n, max_n, bucket)
    size = len(vocab) + subwords.buckets_U.shape[0]
    table_XD = jnp.asarray(word2vec.init_tables(rng, size, dim)[0])
    syn1_VD = jnp.zeros((len(vocab), dim), dtype=jnp.float32)
    ids_T, sentence_T = vocab.encode_corpus(sentences)
    keep_V = vocab_lib.keep_probabilities(vocab.counts, sample)
    steps = word2vec.batches(
        ids_T, sentence_T, keep_V, vocab_lib.negative_distribution(vocab.counts, ns_exponent),
        rng, sg=sg, window=window, epochs=epochs, batch_words=batch_words, block=block,
        shared_negatives=shared_negatives, alpha=alpha, min_alpha=min_alpha)
    capacity = row_capacity(subwords, vocab.counts * keep_V, sg=sg, window=window,
                            batch_words=batch_words)
    expanded = ((piece, words_done) for batch, words_done in steps
                for piece in expand(batch, subwords, capacity, sg))
    run = functools.partial(subword_steps, negative=negative)
    total, words_shown = epochs * ids_T.shape[0], 0
    with tqdm.tqdm(total=total, unit="word", unit_scale=True, disable=not progress,
                   desc="fastText " + ("skip-gram" if sg else "CBOW")) as bar:
        for batches_S, words_done in word2vec.prefetched(word2vec.stacked(expanded,
                                                                          steps_per_call)):
            table_XD, syn1_VD = run(table_XD, syn1_VD, batches_S)
            bar.update(words_done - words_shown)
            words_shown = words_done
        bar.update(total - words_shown)
    table_XD = np.asarray(table_XD)
    return FastTextVectors(vocab.words, table_XD[:len(vocab)], subwords.buckets_U,
                           table_XD[len(vocab):], min_n=min_n, max_n=max_n, bucket=bucket,
                           syn1_VD=np.asarray(syn1_VD))

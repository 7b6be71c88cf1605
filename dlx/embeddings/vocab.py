"""Vocabularies, subsampling and negative-sampling distributions, and vectorised context windows.

Everything here runs on the host in NumPy and is shared by word2vec, fastText and GloVe:

- `tokenize`: the default tokenizer (lower case, letters/digits with inner apostrophes);
  `sentences`: documents as token lists no longer than gensim trains on whole.
- `Vocab`: words sorted by descending count (ties by word), their counts and an index.
- `check_arguments`, `vocabulary`: the trainers' shared input checks and vocabulary step.
- `keep_probabilities`: word2vec.c's (and gensim's) subsampling of frequent words.
- `negative_distribution`: the unigram distribution raised to `power`, for negative sampling.
- `context_mask` / `context_rows` / `centre_contexts` / `skipgram_pairs`: word2vec.c's
  dynamic window (a window b ~ U{1..window} per centre; contexts within b on each side and
  within the sentence) over a whole chunk of tokens at once, as row indices into the chunk.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable, Sequence

import numpy as np

from dlx.errors import DlxError

MAX_SENTENCE = 10_000  # gensim's MAX_WORDS_IN_BATCH, the longest sentence it trains on whole
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of letters/digits, keeping inner apostrophes ("don't", "o'brien")."""
    return _TOKEN.findall(text.lower())


def sentences(documents: Iterable[str], max_tokens: int = MAX_SENTENCE) -> list[list[str]]:
    """Each document tokenized and cut into pieces of at most `max_tokens` tokens (gensim drops
    the rest of a longer sentence; word2vec.c cuts at 1,000)."""
    if max_tokens < 1:
        raise DlxError(f"max_tokens={max_tokens} must be a positive number of tokens")
    pieces = []
    for document in documents:
        tokens = tokenize(document)
        pieces += [tokens[i:i + max_tokens] for i in range(0, len(tokens), max_tokens)]
    return pieces


class OutOfVocabulary(DlxError, KeyError):
    """A word the vocabulary lacks."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True, eq=False)
class Vocab:
    """Words by descending count (ties by word), their int64 counts, and word -> row."""
    words: tuple[str, ...]
    counts: np.ndarray
    key_to_index: dict[str, int] = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        counts = np.asarray(self.counts, dtype=np.int64)
        if counts.shape != (len(self.words),):
            raise DlxError(f"Vocab needs one count per word; got {len(self.words)} words and "
                           f"counts of shape {counts.shape}")
        index = {word: i for i, word in enumerate(self.words)}
        if len(index) != len(self.words):
            raise DlxError(f"Vocab words must be distinct; {len(self.words) - len(index)} repeat")
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "key_to_index", index)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5,
              max_vocab: int = 0) -> Vocab:
        """The words seen at least `min_count` times, at most `max_vocab` of them (0: all)."""
        if min_count < 1 or max_vocab < 0:
            raise DlxError(f"Vocab.build needs min_count >= 1 and max_vocab >= 0 (0: no limit); "
                           f"got min_count={min_count}, max_vocab={max_vocab}")
        counter: collections.Counter[str] = collections.Counter()
        for sentence in sentences:
            if isinstance(sentence, str):
                raise DlxError("Vocab.build needs sentences as lists of tokens, got a str; "
                               "tokenize each document first (e.g. with vocab.tokenize)")
            counter.update(sentence)
        kept = sorted(((-n, w) for w, n in counter.items() if n >= min_count))
        if max_vocab:
            kept = kept[:max_vocab]
        return cls(tuple(w for _, w in kept), np.array([-n for n, _ in kept], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.key_to_index

    @property
    def total(self) -> int:
        """The number of in-vocabulary tokens of the corpus the counts came from."""
        return int(self.counts.sum())

    def index(self, word: str) -> int:
        """The row of `word`; an `OutOfVocabulary` error (a DlxError and a KeyError) if unknown."""
        try:
            return self.key_to_index[word]
        except KeyError:
            raise OutOfVocabulary(f"{word!r} is not in the vocabulary of {len(self)} words "
                                  f"(min_count or max_vocab left it out)") from None

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """The int32 rows (T',) of the in-vocabulary `tokens`, in order; unknown tokens dropped."""
        get = self.key_to_index.get
        ids_T = np.fromiter((get(t, -1) for t in tokens), dtype=np.int32, count=len(tokens))
        return ids_T[ids_T >= 0]

    def encode_corpus(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(ids_T, sentence_T), int32: the in-vocabulary tokens of all sentences, concatenated,
        and the number of the sentence each came from."""
        get = self.key_to_index.get
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        ids_T = np.fromiter((get(t, -1) for s in sentences for t in s), dtype=np.int32,
                            count=int(lengths.sum()))
        sentence_T = np.repeat(np.arange(len(sentences), dtype=np.int32), lengths)
        known_T = ids_T >= 0
        return ids_T[known_T], sentence_T[known_T]


def check_arguments(trainer: str, sentences: Sequence[Sequence[str]], **settings: float) -> None:
    """One-line errors for untokenized `sentences` or a setting below 1, naming `trainer`."""
    if isinstance(sentences, str) or (len(sentences) and isinstance(sentences[0], str)):
        raise DlxError(f"{trainer} needs tokenized sentences (lists of str), got strings; "
                       f"tokenize first, e.g. [vocab.tokenize(doc) for doc in docs]")
    for name, value in settings.items():
        if value < 1:
            raise DlxError(f"{trainer} needs {name} >= 1, got {value}")


def vocabulary(sentences: Sequence[Sequence[str]], min_count: int,
               max_vocab: int) -> Vocab:
    """`Vocab.build`, with a one-line error when no word is frequent enough."""
    vocab = Vocab.build(sentences, min_count=min_count, max_vocab=max_vocab)
    if not len(vocab):
        raise DlxError(f"no word occurs min_count={min_count} times in the {len(sentences)} "
                       f"sentences; lower min_count or give more text")
    return vocab


def keep_probabilities(counts: np.ndarray, sample: float = 1e-3) -> np.ndarray:
    """float64 (V,): the probability that each occurrence of a word survives subsampling.

    word2vec.c's formula as gensim's `prepare_vocab` writes it: with t = sample * total count,
    keep = (sqrt(count / t) + 1) * t / count, clipped to 1. `sample` 0 keeps everything;
    `sample >= 1` is gensim's shorthand for t = int(sample * (3 + sqrt(5)) / 2).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if sample < 0 or np.any(counts <= 0):
        raise DlxError(f"keep_probabilities needs sample >= 0 and positive counts; got "
                       f"sample={sample}, min count {counts.min(initial=1)}")
    total = int(counts.sum())
    if not sample:
        threshold = float(total)
    elif sample < 1.0:
        threshold = sample * total
    else:
        threshold = float(int(sample * (3 + np.sqrt(5)) / 2))
    word_probability = (np.sqrt(counts / threshold) + 1) * (threshold / counts)
    return np.minimum(word_probability, 1.0)


def negative_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """float64 (V,): the noise distribution count**power / sum, as word2vec.c's unigram table."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    if weights.ndim != 1 or not weights.size or weights.sum() <= 0:
        raise DlxError(f"negative_distribution needs a non-empty 1-D array of positive counts; "
                       f"got shape {weights.shape}")
    return weights / weights.sum()


def subsample(rng: np.random.Generator, ids_T: np.ndarray, keep_V: np.ndarray) -> np.ndarray:
    """bool (T,): which tokens survive, each independently with probability keep_V[id]."""
    return rng.random(ids_T.shape[0]) < keep_V[ids_T]


def dynamic_windows(rng: np.random.Generator, size: int, window: int) -> np.ndarray:
    """int32 (size,): word2vec.c's reduced window per centre, uniform in [1, window]."""
    if window < 1:
        raise DlxError(f"window must be >= 1, got {window}")
    return rng.integers(1, window + 1, size=size, dtype=np.int32)


def context_offsets(window: int) -> np.ndarray:
    """int64 (2 * window,): a context slot's offset from its centre, -window .. -1, 1 .. window."""
    return np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])


def context_mask(sentence_T: np.ndarray, windows_T: np.ndarray, window: int) -> np.ndarray:
    """bool (T, 2 * window): whether the row at slot c of centre row t (offset
    `context_offsets(window)[c]`) lies within windows_T[t] and in t's sentence, a run of equal
    sentence_T."""
    size = sentence_T.shape[0]
    positions_T = np.arange(size)
    starts_T = np.ones(size, bool)
    starts_T[1:] = sentence_T[1:] != sentence_T[:-1]
    ends_T = np.append(starts_T[1:], True)
    first_T = np.maximum.accumulate(np.where(starts_T, positions_T, 0))
    last_T = np.minimum.accumulate(np.where(ends_T, positions_T, size)[::-1])[::-1]
    before_T = np.minimum(windows_T, positions_T - first_T)
    after_T = np.minimum(windows_T, last_T - positions_T)
    offsets_C = context_offsets(window)
    return (offsets_C >= -before_T[:, None]) & (offsets_C <= after_T[:, None])


def context_rows(sentence_T: np.ndarray, windows_T: np.ndarray,
                 window: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows_TC int64, valid_TC bool), C = 2 * window: for centre row t, the rows t-window ..
    t-1, t+1 .. t+window (clipped to the chunk) and whether each is a context (`context_mask`)."""
    size = sentence_T.shape[0]
    rows_TC = np.arange(size)[:, None] + context_offsets(window)[None, :]
    rows_TC = np.clip(rows_TC, 0, max(size - 1, 0))
    return rows_TC, context_mask(sentence_T, windows_T, window)


def skipgram_pairs(sentence_T: np.ndarray, windows_T: np.ndarray,
                   window: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre_rows_P, context_rows_P) int64: every skip-gram pair of the chunk, ordered by
    centre row, then by context row."""
    rows_TC, valid_TC = context_rows(sentence_T, windows_T, window)
    centre_rows_P, _ = np.nonzero(valid_TC)
    return centre_rows_P, rows_TC[valid_TC]


def centre_contexts(sentence_T: np.ndarray, windows_T: np.ndarray,
                    window: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre_rows_N, context_rows_NC), C = 2 * window: the centres that have at least one
    context, in order, and their context rows, -1 where a slot is empty."""
    rows_TC, valid_TC = context_rows(sentence_T, windows_T, window)
    has_context_T = valid_TC.any(axis=1)
    return np.flatnonzero(has_context_T), np.where(valid_TC, rows_TC, -1)[has_context_T]

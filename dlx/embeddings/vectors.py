"""Keyed vectors: a matrix of embeddings with one string key per row.

Similarity queries follow gensim's `KeyedVectors` (cosine over unit vectors, 3CosAdd and 3CosMul
analogies, the odd one out), and the word2vec text and binary formats are read and written byte
for byte as gensim writes them, so files go both ways between the two libraries. Any embedding
matrix with string labels (image ids, document ids) can be queried with `from_matrix`.
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterable, Sequence, Union

import numpy as np

from dlx.errors import DlxError
from dlx.train.outputs import write_atomic

METRICS = ("cosine", "euclidean")
ANALOGY_METHODS = ("add", "mul")
COSMUL_EPS = 1e-6  # keeps 3CosMul finite when a negative word is opposite a candidate

# A query term: a word, a raw vector, or either with a weight (word, 2.0).
Term = Union[str, np.ndarray, tuple]


class OOVError(DlxError, KeyError):
    """A word asked of a `KeyedVectors` that is not in its vocabulary."""

    def __init__(self, word: str, size: int):
        super().__init__(f"{word!r} is not in the vocabulary ({size} words); expected a known "
                         f"word")
        self.word = word

    def __str__(self) -> str:  # KeyError would print the message's repr, with quotes.
        return str(self.args[0])


def _as_list(terms: Term | Sequence[Term] | None) -> list:
    if terms is None:
        return []
    if isinstance(terms, (str, np.ndarray)):
        return [terms]
    return list(terms)


def _unit(vector_D: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector_D)
    return vector_D / norm if norm > 0 else vector_D


class KeyedVectors:
    """`words[i]` keys row i of the (V, D) float32 `vectors_VD`; rows of frequent words first
    when the vectors come from a corpus (analogy evaluation relies on it)."""

    def __init__(self, words: Sequence[str], vectors_VD: np.ndarray):
        vectors_VD = np.asarray(vectors_VD, dtype=np.float32)
        words = list(words)
        if vectors_VD.ndim != 2 or vectors_VD.shape[0] != len(words):
            raise DlxError(f"vectors have shape {vectors_VD.shape} for {len(words)} words; "
                           f"expected ({len(words)}, D)")
        index = {}
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise DlxError(f"key {i} is {word!r} ({type(word).__name__}); expected a string")
            if word in index:
                raise DlxError(f"word {word!r} appears twice (rows {index[word]} and {i}); "
                               f"expected distinct words")
            index[word] = i
        self.words = words
        self.vectors_VD = vectors_VD
        self.index = index
        self._unit_VD: np.ndarray | None = None

    @classmethod
    def from_matrix(cls, vectors: np.ndarray, labels: Iterable[object]) -> KeyedVectors:
        """Any (N, D) embedding matrix keyed by `str(label)` of N distinct labels."""
        return cls([str(label) for label in labels], vectors)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        """(D,) float32 vector of `word` (of a word outside the vocabulary: `oov_vector`'s)."""
        row = self._row(word)
        return self.oov_vector(word) if row is None else self.vectors_VD[row]

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} words, {self.vector_size} dims)"

    @property
    def vector_size(self) -> int:
        return self.vectors_VD.shape[1]

    def get_index(self, word: str) -> int:
        """Row of `word`; `OOVError` if it is not in the vocabulary."""
        row = self._row(word)
        if row is None:
            raise OOVError(word, len(self))
        return row

    def oov_vector(self, word: str) -> np.ndarray:
        """(D,) float32 vector of a word outside the vocabulary: here an `OOVError`; a subclass
        may build one (`fasttext.FastTextVectors` from the word's character n-grams)."""
        raise OOVError(word, len(self))

    def _row(self, word: str) -> int | None:
        try:
            return self.index[word]
        except (KeyError, TypeError):
            return None

    def _unit_and_rows(self, word: str) -> tuple[np.ndarray, list[int]]:
        """(D,) unit vector of `word` and [its row], or [] for an `oov_vector`."""
        row = self._row(word)
        if row is None:
            return _unit(np.asarray(self.oov_vector(word), dtype=np.float32)), []
        return self.unit_VD[row], [row]

    @property
    def unit_VD(self) -> np.ndarray:
        """(V, D) float32 rows scaled to unit length (zero rows stay zero); computed once."""
        if self._unit_VD is None:
            norms_V1 = np.linalg.norm(self.vectors_VD, axis=1, keepdims=True)
            self._unit_VD = self.vectors_VD / np.where(norms_V1 > 0, norms_V1, 1.0)
        return self._unit_VD

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words' vectors."""
        return float(self._unit_and_rows(word1)[0] @ self._unit_and_rows(word2)[0])

    def _terms(self, terms: list, sign: float) -> tuple[list[np.ndarray], list[float], list[int]]:
        """Unit vectors, weights and vocabulary rows (words only) of query terms."""
        vectors, weights, rows = [], [], []
        for term in terms:
            weight = sign
            if isinstance(term, tuple):
                term, weight = term
            if isinstance(term, np.ndarray):
                if term.shape != (self.vector_size,):
                    raise DlxError(f"a query vector has shape {term.shape}; expected "
                                   f"({self.vector_size},)")
                vectors.append(_unit(term.astype(np.float32)))
            else:
                unit_D, row = self._unit_and_rows(term)
                vectors.append(unit_D)
                rows += row
            weights.append(float(weight))
        return vectors, weights, rows

    def _top(self, scores_N: np.ndarray, topn: int, exclude: Iterable[int],
             largest: bool = True) -> list[tuple[str, float]]:
        """The `topn` best (word, score) of `scores_N` over the first N rows, bar `exclude`."""
        order_N = (-scores_N if largest else scores_N).astype(np.float64)
        excluded = [row for row in set(exclude) if row < len(order_N)]
        order_N[excluded] = np.inf
        count = min(topn, len(order_N) - len(excluded))
        if count <= 0:
            return []
        best = np.argpartition(order_N, count - 1)[:count]
        best = best[np.lexsort((best, order_N[best]))]
        return [(self.words[i], float(scores_N[i])) for i in best]

    def _limit(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self)
        if restrict_vocab < 1:
            raise DlxError(f"restrict_vocab={restrict_vocab} must be a positive number of words")
        return min(restrict_vocab, len(self))

    def most_similar(self, positive: Term | Sequence[Term] | None = None,
                     negative: Term | Sequence[Term] | None = None, topn: int = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """(word, cosine) of the `topn` words nearest the normalised weighted mean of the unit
        vectors of `positive` minus `negative` (3CosAdd); the query words are left out. Raw
        vectors are normalised too (gensim adds them as they are, which matters only in a mix)."""
        positive, negative = _as_list(positive), _as_list(negative)
        if not positive and not negative:
            raise DlxError("most_similar needs at least one positive or negative word")
        if topn < 1:
            return []
        pos_vectors, pos_weights, pos_rows = self._terms(positive, 1.0)
        neg_vectors, neg_weights, neg_rows = self._terms(negative, -1.0)
        weights = np.array(pos_weights + neg_weights)
        mean_D = weights @ np.stack(pos_vectors + neg_vectors) / np.abs(weights).sum()
        scores_N = self.unit_VD[:self._limit(restrict_vocab)] @ _unit(mean_D).astype(np.float32)
        return self._top(scores_N, topn, pos_rows + neg_rows)

    def most_similar_cosmul(self, positive: Term | Sequence[Term] | None = None,
                            negative: Term | Sequence[Term] | None = None, topn: int = 10,
                            restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """(word, score) of the `topn` words maximising prod(pos sims) / (prod(neg sims) + 1e-6)
        with cosines shifted to [0, 1] by (1 + cos) / 2 (3CosMul, Levy & Goldberg 2014)."""
        positive, negative = _as_list(positive), _as_list(negative)
        if not positive:
            raise DlxError("most_similar_cosmul needs at least one positive word")
        if topn < 1:
            return []
        pos_vectors, _, pos_rows = self._terms(positive, 1.0)
        neg_vectors, _, neg_rows = self._terms(negative, -1.0)
        unit_ND = self.unit_VD[:self._limit(restrict_vocab)]
        numerator_N = np.prod([(1 + unit_ND @ v) / 2 for v in pos_vectors], axis=0)
        denominator_N = np.prod([(1 + unit_ND @ v) / 2 for v in neg_vectors], axis=0)
        return self._top(numerator_N / (denominator_N + COSMUL_EPS), topn, pos_rows + neg_rows)

    def analogy(self, a: str, b: str, c: str, method: str = "add",
                topn: int = 1) -> list[tuple[str, float]]:
        """(word, score) of the `topn` answers to "a is to b as c is to ?" by 3CosAdd (`add`)
        or 3CosMul (`mul`), never one of a, b, c."""
        if method not in ANALOGY_METHODS:
            raise DlxError(f"method={method!r} is not an analogy method; expected one of: "
                           f"{', '.join(ANALOGY_METHODS)}")
        search = self.most_similar if method == "add" else self.most_similar_cosmul
        return search(positive=[b, c], negative=[a], topn=topn)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word whose unit vector is least similar to the normalised mean of all of them."""
        words = list(words)
        if not words:
            raise DlxError("doesnt_match needs at least one word")
        unit_WD = np.stack([self._unit_and_rows(word)[0] for word in words])
        scores_W = unit_WD @ _unit(unit_WD.mean(axis=0))
        # Ties go to the alphabetically first word, as in gensim's sorted (score, word) pairs.
        return min(zip(scores_W.tolist(), words))[1]

    def nearest(self, query: str | np.ndarray, topn: int = 10,
                metric: str = "cosine") -> list[tuple[str, float]]:
        """(key, score) of the `topn` rows nearest `query` (a key, left out of the answer, or a
        (D,) vector): highest cosine similarity first, or smallest euclidean distance first."""
        if metric not in METRICS:
            raise DlxError(f"metric={metric!r} is not known; expected one of: {', '.join(METRICS)}")
        exclude = []
        if isinstance(query, np.ndarray):
            if query.shape != (self.vector_size,):
                raise DlxError(f"the query vector has shape {query.shape}; expected "
                               f"({self.vector_size},)")
            query_D = query.astype(np.float32)
        else:
            row = self._row(query)
            exclude = [] if row is None else [row]
            query_D = self[query]
        if metric == "cosine":
            return self._top(self.unit_VD @ _unit(query_D), topn, exclude)
        distances_V = np.linalg.norm(self.vectors_VD - query_D[None, :], axis=1)
        return self._top(distances_V, topn, exclude, largest=False)

    def save_word2vec_format(self, path: str | os.PathLike, binary: bool = False) -> None:
        """Writes the word2vec format exactly as gensim does: a "V D" header line, then per word
        `word v1 ... vD` (text) or `word ` and D little-endian float32 (binary)."""
        for i, word in enumerate(self.words):
            if not word or " " in word or "\n" in word:
                raise DlxError(f"word {i} ({word!r}) cannot be stored in the word2vec format; "
                               f"expected a non-empty word without spaces or newlines")
        path = pathlib.Path(path)
        if not path.parent.is_dir():
            raise DlxError(f"{path}: the folder {path.parent} does not exist")
        records = [f"{len(self)} {self.vector_size}\n".encode()]
        for word, vector_D in zip(self.words, self.vectors_VD.astype("<f4")):
            if binary:
                records.append(word.encode() + b" " + vector_D.tobytes())
            else:
                values = " ".join(str(value) for value in vector_D)
                records.append(f"{word} {values}\n".encode())
        write_atomic(path, b"".join(records))

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike, binary: bool = False,
                             limit: int | None = None) -> KeyedVectors:
        """Reads a word2vec text or binary file (gensim's or the C tool's); `limit` keeps only
        the first words. A malformed file raises `DlxError` naming the line or word."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise DlxError(f"{path}: no such file; expected a word2vec-format vector file")
        data = path.read_bytes()
        header_end = data.find(b"\n")
        header = data[:header_end if header_end >= 0 else len(data)]
        fields = header.split()
        if len(fields) != 2 or not all(field.isdigit() for field in fields) or int(fields[1]) < 1:
            raise DlxError(f"{path}: line 1 is {header[:60]!r}; expected the header "
                           f"'VOCAB_SIZE DIMENSION' (two integers, dimension >= 1)")
        count, dim = int(fields[0]), int(fields[1])
        if limit is not None:
            count = min(count, limit)
        body = data[header_end + 1:] if header_end >= 0 else b""
        read = _read_binary if binary else _read_text
        words, vectors_VD, surplus = read(path, body, count, dim)
        if surplus and limit is None:
            raise DlxError(f"{path}: there is more ({surplus}) after the {count} vectors the "
                           f"header promises; expected the header to count every vector")
        return cls(words, vectors_VD)


def _check_new(path: pathlib.Path, word: str, seen: dict[str, str], where: str) -> None:
    if word in seen:
        raise DlxError(f"{path}: {where} repeats the word {word!r} of {seen[word]}; expected "
                       f"distinct words")


def _read_text(path: pathlib.Path, body: bytes, count: int,
               dim: int) -> tuple[list[str], np.ndarray, str]:
    """Words, (count, dim) vectors and what non-blank text follows them ("" if none) in the
    lines after the header of a text file."""
    lines = body.split(b"\n")
    words, seen = [], {}
    vectors_VD = np.empty((count, dim), dtype=np.float32)
    for i in range(count):
        line_no = i + 2
        if i >= len(lines) or (i == len(lines) - 1 and not lines[i]):
            raise DlxError(f"{path}: the file ends at line {line_no - 1}; the header promises "
                           f"{count} vectors")
        try:
            parts = lines[i].decode("utf-8").rstrip().split(" ")
        except UnicodeDecodeError as e:
            raise DlxError(f"{path}: line {line_no} is not UTF-8 ({e.reason} at byte "
                           f"{e.start})") from None
        if len(parts) - 1 != dim:
            raise DlxError(f"{path}: line {line_no} has {len(parts) - 1} values; expected a word "
                           f"and {dim} values")
        try:
            vectors_VD[i] = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            bad = next(value for value in parts[1:] if not _is_float(value))
            raise DlxError(f"{path}: line {line_no} has the value {bad!r}; expected "
                           f"{dim} numbers after the word") from None
        _check_new(path, parts[0], seen, f"line {line_no}")
        seen[parts[0]] = f"line {line_no}"
        words.append(parts[0])
    surplus = next((f"line {count + 2 + i}" for i, line in enumerate(lines[count:])
                    if line.strip()), "")
    return words, vectors_VD, surplus


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_binary(path: pathlib.Path, body: bytes, count: int,
                 dim: int) -> tuple[list[str], np.ndarray, str]:
    """Words, (count, dim) vectors and what bytes follow them ("" if only newlines) of
    `word ` + dim float32 records (a newline may follow each, as the C tool writes)."""
    width = 4 * dim
    words, seen = [], {}
    vectors_VD = np.empty((count, dim), dtype=np.float32)
    start = 0
    for i in range(count):
        while body[start:start + 1] == b"\n":
            start += 1
        space = body.find(b" ", start)
        if space < 0 or len(body) - space - 1 < width:
            raise DlxError(f"{path}: the file is truncated at word {i} (0-based) of {count}; "
                           f"expected a word, a space and {width} bytes of float32 for each")
        try:
            word = body[start:space].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DlxError(f"{path}: word {i} is not UTF-8 ({e.reason} at byte "
                           f"{e.start})") from None
        vectors_VD[i] = np.frombuffer(body, dtype="<f4", count=dim, offset=space + 1)
        _check_new(path, word, seen, f"word {i}")
        seen[word] = f"word {i}"
        words.append(word)
        start = space + 1 + width
    surplus = f"{len(body) - start} more bytes" if body[start:].strip(b"\n") else ""
    return words, vectors_VD, surplus

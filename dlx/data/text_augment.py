"""Text augmentation on token lists, EDA-style (Wei & Zou 2019), with a seeded NumPy generator.

Four operations on a sentence of N tokens: `synonym_replace` (n words swapped for one of their
nearest neighbours in a `KeyedVectors`), `random_insert` (a neighbour of a random word inserted
at a random position, n times), `random_swap` (two positions exchanged, n times) and
`random_delete` (each token dropped with probability p); `augment` makes several variants, one
operation each, with n = max(1, round(alpha * N)). The same generator state gives the same
output; the input list is never modified, and a non-empty sentence never comes back empty.
Unlike `dlx.data.augment` (image transforms inside the jitted train step), this runs on the host,
on strings, before tokenisation to ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Sequence

import numpy as np

from dlx.errors import DlxError

if TYPE_CHECKING:  # Any object with `in` and `most_similar(word, topn=k)` works.
    from dlx.embeddings.vectors import KeyedVectors as Neighbours

OPERATIONS = ("synonym_replace", "random_insert", "random_swap", "random_delete")


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise DlxError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); got "
                       f"{type(rng).__name__}")
    return rng


def _check_count(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DlxError(f"{name}={n!r} must be an int >= 0")
    return int(n)


def _check_rate(name: str, rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not 0.0 <= rate <= 1.0:
        raise DlxError(f"{name}={rate!r} must be a probability in [0, 1]")
    return float(rate)


def _check_tokens(tokens: Sequence[str]) -> list[str]:
    if isinstance(tokens, str):
        raise DlxError("tokens must be a list of words; got a string (split it first)")
    tokens = list(tokens)
    bad = [t for t in tokens if not isinstance(t, str)]
    if bad:
        raise DlxError(f"tokens must be strings; got {bad[0]!r} ({type(bad[0]).__name__})")
    return tokens


def _synonyms(word: str, neighbours: Neighbours, topk: int, cache: dict) -> list[str]:
    """The `topk` nearest neighbours of `word` other than itself ([] when out of vocabulary)."""
    if word not in cache:
        found = neighbours.most_similar(word, topn=topk) if word in neighbours else []
        cache[word] = [other for other, _ in found if other != word]
    return cache[word]


def _candidates(tokens: list[str], neighbours: Neighbours, topk: int, stopwords: Collection[str],
                cache: dict) -> list[int]:
    """Positions of words that are in the vocabulary, not stopwords, and have a neighbour."""
    return [i for i, word in enumerate(tokens)
            if word not in stopwords and _synonyms(word, neighbours, topk, cache)]


def synonym_replace(tokens: Sequence[str], n: int, neighbours: Neighbours,
                    rng: np.random.Generator, *, topk: int = 10,
                    stopwords: Collection[str] = ()) -> list[str]:
    """`tokens` with up to `n` random positions (in-vocabulary, not stopwords) replaced by one of
    their `topk` most similar words, drawn uniformly; fewer when fewer positions qualify."""
    tokens, n, rng = _check_tokens(tokens), _check_count("n", n), _check_rng(rng)
    topk = _check_count("topk", topk)
    cache: dict = {}
    positions = _candidates(tokens, neighbours, topk, stopwords, cache)
    out = list(tokens)
    for i in rng.permutation(positions)[:n]:
        choices = _synonyms(tokens[i], neighbours, topk, cache)
        out[i] = choices[rng.integers(len(choices))]
    return out


def random_insert(tokens: Sequence[str], n: int, neighbours: Neighbours,
                  rng: np.random.Generator, *, topk: int = 10,
                  stopwords: Collection[str] = ()) -> list[str]:
    """`tokens` with `n` insertions, each a random `topk` neighbour of a random qualifying word
    (in-vocabulary, not a stopword) put at a random position; unchanged if no word qualifies."""
    tokens, n, rng = _check_tokens(tokens), _check_count("n", n), _check_rng(rng)
    topk = _check_count("topk", topk)
    cache: dict = {}
    positions = _candidates(tokens, neighbours, topk, stopwords, cache)
    out = list(tokens)
    for _ in range(n if positions else 0):
        choices = _synonyms(tokens[positions[rng.integers(len(positions))]], neighbours, topk,
                            cache)
        out.insert(int(rng.integers(len(out) + 1)), choices[rng.integers(len(choices))])
    return out


def random_swap(tokens: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """`tokens` after `n` swaps of two distinct random positions (the same multiset)."""
    tokens, n, rng = _check_tokens(tokens), _check_count("n", n), _check_rng(rng)
    out = list(tokens)
    for _ in range(n if len(out) >= 2 else 0):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def random_delete(tokens: Sequence[str], p: float, rng: np.random.Generator) -> list[str]:
    """`tokens` with each one dropped with probability `p`; one random token is kept when all
    would go, so a non-empty input never comes back empty."""
    tokens, p, rng = _check_tokens(tokens), _check_rate("p", p), _check_rng(rng)
    if not tokens:
        return []
    keep = rng.random(len(tokens)) >= p
    if not keep.any():
        return [tokens[int(rng.integers(len(tokens)))]]
    return [word for word, kept in zip(tokens, keep) if kept]


def augment(tokens: Sequence[str], rng: np.random.Generator, *, num_aug: int = 4,
            neighbours: Neighbours | None = None, alpha_sr: float = 0.1, alpha_ri: float = 0.1,
            alpha_rs: float = 0.1, p_rd: float = 0.1, topk: int = 10,
            stopwords: Collection[str] = ()) -> list[list[str]]:
    """`num_aug` variants of `tokens`, variant i made by operation i of the enabled ones in
    `OPERATIONS` order, cycling (EDA: one operation per variant). An operation is enabled when
    its rate is > 0; replacement and insertion also need `neighbours`. Replace, insert and swap
    act on n = max(1, round(alpha * len(tokens))) words; deletion drops each with `p_rd`."""
    tokens, rng = _check_tokens(tokens), _check_rng(rng)
    num_aug = _check_count("num_aug", num_aug)
    rates = {"synonym_replace": alpha_sr, "random_insert": alpha_ri, "random_swap": alpha_rs,
             "random_delete": p_rd}
    for (name, rate), key in zip(rates.items(), ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd")):
        rates[name] = _check_rate(key, rate)
    needs_neighbours = ("synonym_replace", "random_insert")
    enabled = [name for name in OPERATIONS if rates[name] > 0
               and (neighbours is not None or name not in needs_neighbours)]
    if num_aug and not enabled:
        raise DlxError("augment has no operation enabled; set a rate > 0 (synonym replacement "
                       "and insertion also need neighbours)")
    count = lambda alpha: max(1, round(alpha * len(tokens)))
    variants = []
    for i in range(num_aug):
        name = enabled[i % len(enabled)]
        if name == "synonym_replace":
            variants.append(synonym_replace(tokens, count(alpha_sr), neighbours, rng, topk=topk,
                                            stopwords=stopwords))
        elif name == "random_insert":
            variants.append(random_insert(tokens, count(alpha_ri), neighbours, rng, topk=topk,
                                          stopwords=stopwords))
        elif name == "random_swap":
            variants.append(random_swap(tokens, count(alpha_rs), rng))
        else:
            variants.append(random_delete(tokens, p_rd, rng))
    return variants

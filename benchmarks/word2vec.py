"""dlx word vectors vs gensim 4 on CPU: training words/s and vector quality side by side.

Models (`--models`): word2vec skip-gram (`sgns`) and CBOW (`cbow`) against gensim's `Word2Vec`,
fastText skip-gram (`fasttext`) against gensim's `FastText`, and GloVe (`glove`) against
PPMI-SVD (`dlx.embeddings.count`; gensim has no GloVe, and PPMI-SVD is the count-based method
GloVe was measured against).

Both sides train on the same token lists (each document through `dlx.embeddings.vocab.tokenize`,
cut into pieces of at most 10,000 tokens, the longest sentence gensim trains on whole) with the
same hyperparameters: 100 dims, window 5, 5 negative samples, min_count 5, sample 1e-3, 5 epochs,
and a learning rate decaying linearly from alpha to 1e-4. alpha defaults to word2vec.c's
(and dlx's) 0.025 for skip-gram and 0.05 for CBOW, given to gensim too (its own default is 0.025
for both). fastText adds n-grams of 3-6 characters in 2,000,000 hash buckets (gensim's default).
GloVe uses window 10 (the paper's) with `glove.train`'s defaults, and PPMI-SVD the same window
and vocabulary. The default corpus is gensim's shortened English Wikipedia dump and its Lee
corpus (`dlx.data.text`).

Speed is training words/s: the corpus's tokens (before min_count and subsampling) times epochs
over the wall seconds of one whole training call. For gensim that is `Word2Vec(sentences, ...)`
(or `FastText`): vocabulary build and training on `--workers` threads. For dlx it is the
`train` function: vocabulary build, encoding, jit compilation (the caches are cleared before
each run, so every run compiles as a first run in a fresh process does) and training. For GloVe
vs PPMI-SVD both sides count the corpus times --epochs, so only their ratio (of wall times)
means something. Rounds alternate dlx and the peer, each run seeded with its round number; the
speeds are medians over rounds. `dlx_warm` is one more dlx run with the compiled step still
cached (what a second `train` in the same process costs).

Quality comes from each run's vectors through `dlx.embeddings.evaluate`, for both libraries
(gensim's as a dlx `KeyedVectors` of `wv.index_to_key` and `wv.vectors`), as means over rounds:
WordSim-353 and SimLex-999 Spearman correlations, Google analogy accuracy (3CosAdd over the
300,000 most frequent words, gensim's `restrict_vocab`), and for each set the fraction of pairs
or questions skipped as out of vocabulary. One JSON line per model (`benchmarks/harness.py`);
ratio = dlx words/s over the peer's.

    python benchmarks/word2vec.py                    # all four models, enwiki + Lee, 3 rounds
    python benchmarks/word2vec.py --models cbow --epochs 1 --rounds 5 --workers 1
    python benchmarks/word2vec.py --quick            # 30 Lee stories, 1 epoch: checks that it runs
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import statistics
import sys
import time
from typing import Callable, NamedTuple

import gensim
import jax
import numpy as np
from gensim.models import FastText, Word2Vec

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import comparison, emit, interleaved_medians  # noqa: E402

from dlx.data import text  # noqa: E402
from dlx.embeddings import count, evaluate, fasttext, glove, word2vec  # noqa: E402
from dlx.embeddings.vectors import KeyedVectors  # noqa: E402
from dlx.embeddings.vocab import MAX_SENTENCE, sentences as vocab_sentences  # noqa: E402

CORPORA = {"gensim_enwiki,gensim_lee": lambda: text.gensim_enwiki() + text.gensim_lee(),
           "gensim_lee": text.gensim_lee}
QUALITY_DIGITS = 4

# (sentences, seed) -> (words, vectors_VD), words by descending frequency.
Trainer = Callable[[list[list[str]], int], tuple[list[str], np.ndarray]]


class Contest(NamedTuple):
    """One model trained both ways: the record's name, the peer's name, the shared
    hyperparameters, and how dlx and the peer train it."""
    name: str
    peer_name: str
    hyperparameters: dict
    dlx: Trainer
    peer: Trainer


def sentences(corpus: str, documents: int = 0) -> list[list[str]]:
    """The tokens of the first `documents` documents (0: all) of `corpus`, in pieces of at most
    MAX_SENTENCE tokens."""
    texts = CORPORA[corpus]()
    return vocab_sentences(texts[:documents or len(texts)], MAX_SENTENCE)


def word2vec_contest(args: argparse.Namespace, *, sg: bool) -> Contest:
    """Skip-gram (sg) or CBOW with negative sampling in dlx and in gensim, same settings."""
    hyper = {"sg": sg, "dim": args.dim, "window": args.window, "negative": args.negative,
             "min_count": args.min_count, "sample": args.sample, "epochs": args.epochs,
             "alpha": args.alpha or (0.025 if sg else 0.05), "min_alpha": 1e-4}

    def dlx(tokens: list[list[str]], seed: int) -> tuple[list[str], np.ndarray]:
        vocab, vectors_VD = word2vec.train(tokens, **hyper, seed=seed, progress=False)
        return list(vocab.words), vectors_VD

    def peer(tokens: list[list[str]], seed: int) -> tuple[list[str], np.ndarray]:
        model = Word2Vec(tokens, sg=int(sg), vector_size=args.dim, window=args.window,
                         negative=args.negative, min_count=args.min_count, sample=args.sample,
                         epochs=args.epochs, alpha=hyper["alpha"], min_alpha=hyper["min_alpha"],
                         workers=args.workers, seed=seed)
        return list(model.wv.index_to_key), model.wv.vectors

    return Contest(f"word2vec-{'sgns' if sg else 'cbow'}-vs-gensim",
                   f"gensim-{gensim.__version__}-Word2Vec", hyper, dlx, peer)


def fasttext_contest(args: argparse.Namespace) -> Contest:
    """fastText skip-gram (character n-grams 3-6 hashed into --bucket rows) in dlx and in gensim's
    `FastText`, same settings; both report their in-vocabulary vectors (word and n-grams
    combined)."""
    hyper = {"sg": True, "dim": args.dim, "window": args.window, "negative": args.negative,
             "min_count": args.min_count, "sample": args.sample, "epochs": args.epochs,
             "alpha": args.alpha or 0.025, "min_alpha": 1e-4, "min_n": 3, "max_n": 6,
             "bucket": args.bucket}

    def dlx(tokens: list[list[str]], seed: int) -> tuple[list[str], np.ndarray]:
        vectors = fasttext.train(tokens, **hyper, seed=seed, progress=False)
        return list(vectors.words), vectors.vectors_VD

    def peer(tokens: list[list[str]], seed: int) -> tuple[list[str], np.ndarray]:
        model = FastText(tokens, sg=1, vector_size=args.dim, window=args.window,
                         negative=args.negative, min_count=args.min_count, sample=args.sample,
                         epochs=args.epochs, alpha=hyper["alpha"], min_alpha=hyper["min_alpha"],
                         min_n=3, max_n=6, bucket=args.bucket, workers=args.workers, seed=seed)
        return list(model.wv.index_to_key), model.wv.vectors

    return Contest("fasttext-sg-vs-gensim", f"gensim-{gensim.__version__}-FastText", hyper, dlx,
                   peer)


def glove_contest(args: argparse.Namespace) -> Contest:
    """GloVe (`glove.train`'s defaults: x_max 5, eta 0.1, 25 iterations) against the count-based
    method it set out to beat, PPMI-SVD (Levy et al.'s settings), on the same vocabulary
    (--min-count) and window (--glove-window), both --dim wide; gensim has no GloVe."""
    hyper = {"dim": args.dim, "window": args.glove_window, "min_count": args.min_count}

    def dlx(tokens: list[list[str]], seed: int) -> tuple[list[str], np.ndarray]:
        vocab, vectors_VD = glove.train(tokens, **hyper, seed=seed, progress=False)
        return list(vocab.words), vectors_VD

    def peer(tokens: list[list[str]], seed: int) -> tuple[list[str], np.ndarray]:
        vocab, vectors_VD = count.train(tokens, dim=args.dim, window=args.glove_window,
                                        min_count=args.min_count, seed=seed)
        return list(vocab.words), vectors_VD

    return Contest("glove-vs-ppmi-svd", "dlx-ppmi-svd", hyper, dlx, peer)


# --models: name -> its contest.
MODELS: dict[str, Callable[[argparse.Namespace], Contest]] = {
    "sgns": functools.partial(word2vec_contest, sg=True),
    "cbow": functools.partial(word2vec_contest, sg=False),
    "fasttext": fasttext_contest,
    "glove": glove_contest,
}


def quality(words: list[str], vectors_VD: np.ndarray) -> dict[str, float]:
    """WordSim-353 and SimLex-999 Spearman, Google analogy accuracy, and each set's OOV ratio."""
    return evaluate.headline(evaluate.evaluate_all(KeyedVectors(words, vectors_VD)))


def mean_quality(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's mean over runs."""
    return {key: round(statistics.fmean(run[key] for run in runs), QUALITY_DIGITS)
            for key in runs[0]}


def compete(contest: Contest, tokens: list[list[str]], rounds: int,
            warm: bool) -> tuple[dict[str, float], dict[str, list]]:
    """(median seconds of "dlx" and "peer", plus "dlx_warm" if `warm`; each side's runs'
    (words, vectors)): `rounds` rounds of a cold dlx run then a peer run, seed = round."""
    runs: dict[str, list] = {"dlx": [], "peer": []}

    def cold_dlx() -> None:
        jax.clear_caches()
        runs["dlx"].append(contest.dlx(tokens, len(runs["dlx"])))

    def peer() -> None:
        runs["peer"].append(contest.peer(tokens, len(runs["peer"])))

    seconds = interleaved_medians({"dlx": cold_dlx, "peer": peer}, warmup=0, rounds=rounds,
                                  calls_per_round=1)
    if warm:
        start = time.perf_counter()
        contest.dlx(tokens, rounds)
        seconds["dlx_warm"] = time.perf_counter() - start
    return seconds, runs


def main(argv: list[str] | None = None) -> None:
    """Parses flags, loads the corpus once and emits one comparison line per model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--corpus", choices=list(CORPORA), default="gensim_enwiki,gensim_lee")
    parser.add_argument("--documents", type=int, default=0,
                        help="only the corpus's first documents (0: all)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=None,
                        help="starting learning rate (default: 0.025 skip-gram, 0.05 CBOW)")
    parser.add_argument("--bucket", type=int, default=2_000_000,
                        help="fastText's n-gram hash buckets (gensim's default)")
    parser.add_argument("--glove-window", type=int, default=10,
                        help="GloVe's and PPMI-SVD's window (GloVe's paper: 10)")
    parser.add_argument("--workers", type=int, default=2, help="gensim's training threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the extra dlx run with the compiled step cached")
    parser.add_argument("--quick", action="store_true",
                        help="30 Lee stories, min_count 1, 1 epoch, 1 round: checks that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.corpus, args.documents, args.min_count = "gensim_lee", 30, 1
        args.epochs, args.rounds, args.bucket = 1, 1, 20_000
    tokens = sentences(args.corpus, args.documents)
    corpus_words = sum(map(len, tokens))
    jax.devices()  # backend start-up is no part of the first run
    for name in args.models:
        contest = MODELS[name](args)
        seconds, runs = compete(contest, tokens, args.rounds, warm=not args.no_warm)
        trained = corpus_words * args.epochs
        extra = {}
        if "dlx_warm" in seconds:
            extra = {"dlx_warm": round(trained / seconds["dlx_warm"], 2),
                     "ratio_warm": round(seconds["peer"] / seconds["dlx_warm"], 3)}
        emit(comparison(
            contest.name, trained / seconds["dlx"], trained / seconds["peer"],
            "words/s", **extra, peer_name=contest.peer_name,
            dlx_quality=mean_quality([quality(*run) for run in runs["dlx"]]),
            peer_quality=mean_quality([quality(*run) for run in runs["peer"]]),
            dlx_vocab=len(runs["dlx"][0][0]), peer_vocab=len(runs["peer"][0][0]),
            hyperparameters=contest.hyperparameters, workers=args.workers, corpus=args.corpus,
            documents=args.documents, sentences=len(tokens), corpus_words=corpus_words,
            rounds=args.rounds, dlx_s=round(seconds["dlx"], 3),
            peer_s=round(seconds["peer"], 3), backend=jax.default_backend(),
            load_1min=round(os.getloadavg()[0], 2)))


if __name__ == "__main__":
    main()

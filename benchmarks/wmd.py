"""Word Mover's Distance: batched entropic Sinkhorn in JAX vs exact POT per pair, pairs/s.

Documents are the 300 stories of gensim's Lee corpus, lower-cased `\\w+` tokens; the pairs are
drawn at random (distinct documents, fixed seed). The vectors are gensim's `lee_fasttext.vec`
(fastText trained on the same corpus: 1,762 words, 10 dims, 73 % of tokens in vocabulary), or
with `--vectors random` seeded normal vectors of `--dim` dims over the whole corpus vocabulary.
Both sides use unit word vectors, as gensim's `wmdistance` does. Contenders, each computing the
distance of every pair per call:

- `sinkhorn`: `dlx.embeddings.wmd.wmd_sinkhorn` (matrix-scaling Sinkhorn with epsilon scaling,
  jitted, vmapped over pairs bucketed by size), each stage to a row-marginal L1 error of
  `--tolerance`; the transport cost at `--epsilon`.
- `pot`: `dlx.embeddings.wmd.wmd_exact`, POT's network simplex (`ot.emd2`) one pair at a time.
- `gensim`: `KeyedVectors.wmdistance`, the same exact solver behind gensim's bookkeeping (a
  `Dictionary` and a dense vocabulary-sized cost matrix per pair).

Interleaved rounds, medians (`benchmarks/harness.py`), after a first Sinkhorn call that compiles
one program per padded shape (`first_call_s`, `compiles`; not in the medians). One JSON line:
ratio = Sinkhorn pairs/s over POT's, `ratio_vs_gensim` over gensim's; Sinkhorn's mean and max
relative error against the exact distances.

    python benchmarks/wmd.py                    # 1000 pairs, lee_fasttext vectors, epsilon 0.01
    python benchmarks/wmd.py --vectors random --dim 100 --rounds 3
    python benchmarks/wmd.py --quick            # 50 pairs, one round: checks that it runs
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import comparison, emit, interleaved_medians  # noqa: E402

from dlx.data.text import gensim_lee  # noqa: E402
from dlx.embeddings.vectors import KeyedVectors  # noqa: E402
from dlx.embeddings.wmd import sinkhorn_costs, wmd_exact, wmd_sinkhorn  # noqa: E402


def lee_documents() -> list[list[str]]:
    """The Lee background stories as lists of lower-cased word tokens."""
    return [re.findall(r"\w+", story.lower()) for story in gensim_lee()]


def vectors(kind: str, documents: list[list[str]], dim: int) -> KeyedVectors:
    """gensim's lee_fasttext.vec, or seeded random vectors over the corpus vocabulary."""
    if kind == "lee_fasttext":
        from gensim.test.utils import datapath
        return KeyedVectors.load_word2vec_format(datapath("lee_fasttext.vec"))
    words = sorted({token for document in documents for token in document})
    return KeyedVectors(words, np.random.default_rng(0).normal(size=(len(words), dim)))


def main(argv: list[str] | None = None) -> None:
    """Parses flags, times the three contenders interleaved and emits one comparison line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--vectors", choices=["lee_fasttext", "random"], default="lee_fasttext")
    parser.add_argument("--dim", type=int, default=100, help="dims of --vectors random")
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--tolerance", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-gensim", action="store_true", help="leave gensim's wmdistance out")
    parser.add_argument("--quick", action="store_true", help="50 pairs, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.rounds, args.warmup = 50, 1, 1
    documents = lee_documents()
    kv = vectors(args.vectors, documents, args.dim)
    rng = np.random.default_rng(0)
    first = rng.integers(len(documents), size=args.pairs)
    second = (first + rng.integers(1, len(documents), size=args.pairs)) % len(documents)
    docs_a, docs_b = [documents[i] for i in first], [documents[i] for i in second]

    def sinkhorn() -> np.ndarray:
        return wmd_sinkhorn(kv, docs_a, docs_b, epsilon=args.epsilon, tolerance=args.tolerance,
                            batch_size=args.batch_size)

    def pot() -> np.ndarray:
        return np.array([wmd_exact(kv, a, b) for a, b in zip(docs_a, docs_b)])

    contenders = {"sinkhorn": sinkhorn, "pot": pot}
    if not args.no_gensim:
        from gensim.models import KeyedVectors as GensimKeyedVectors
        theirs = GensimKeyedVectors(kv.vector_size)
        theirs.add_vectors(kv.words, kv.vectors_VD)
        contenders["gensim"] = lambda: [theirs.wmdistance(a, b) for a, b in zip(docs_a, docs_b)]
    start = time.perf_counter()
    sinkhorn()
    first_call_s = time.perf_counter() - start
    compiles = sinkhorn_costs._cache_size()  # jit's count of compiled shapes
    seconds = interleaved_medians(contenders, warmup=args.warmup, rounds=args.rounds,
                                  calls_per_round=1)
    exact_P = pot()
    # The corpus repeats 7 stories; a pair of copies has distance 0 and no relative error.
    distinct = exact_P > 0
    errors_P = np.abs(sinkhorn()[distinct] - exact_P[distinct]) / exact_P[distinct]
    extra = {}
    if "gensim" in seconds:
        extra = {"gensim": round(args.pairs / seconds["gensim"], 2),
                 "ratio_vs_gensim": round(seconds["gensim"] / seconds["sinkhorn"], 3)}
    emit(comparison("wmd-sinkhorn-vs-pot-exact", args.pairs / seconds["sinkhorn"],
                    args.pairs / seconds["pot"], "pairs/s", pairs=args.pairs,
                    vectors=args.vectors, dim=kv.vector_size, epsilon=args.epsilon,
                    tolerance=args.tolerance, first_call_s=round(first_call_s, 2),
                    compiles=compiles,
                    mean_rel_error=round(float(errors_P.mean()), 5),
                    max_rel_error=round(float(errors_P.max()), 5), **extra,
                    backend=jax.default_backend(), load_1min=round(os.getloadavg()[0], 2)))


if __name__ == "__main__":
    main()

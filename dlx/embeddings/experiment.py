"""Word-vector experiments: `dlx train` of a config with `kind = "embeddings"`.

A run tokenizes the corpus of `data.*` (`dlx.data.text.documents`), trains the vectors of
`model.name` (word2vec, fasttext, glove or ppmi_svd, with `model.*` as its keyword arguments and
`config.seed`), and writes to the workdir:
- `config.json`, the config;
- `vectors.txt`, the vocabulary's vectors in the word2vec text format (gensim reads it);
- `fasttext/`, for fastText, the whole model (n-gram table included: vectors for unseen words);
- `eval.json`, WordSim-353 and SimLex-999 Spearman ρ, Google analogy accuracy (per section) and
  their out-of-vocabulary ratios (`dlx.embeddings.evaluate`), and the nearest neighbours of the
  probe words `eval.neighbours`;
- `summary.json`, what `dlx train` prints: corpus and vocabulary sizes, training seconds and
  words/s, and the headline figures.

A run takes seconds to a few minutes, so it is one unit: files are written atomically once it
has finished, a killed run leaves no partial file and trains again from the start, and a
finished run is not trained again (`dlx train` reprints its summary; `dlx eval` re-evaluates
its `vectors.txt`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pathlib
import sys
import time
from typing import Callable

import ml_collections

from dlx import config as config_lib
from dlx.data import text
from dlx.embeddings import evaluate as evaluate_lib
from dlx.embeddings import vocab as vocab_lib
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError
from dlx.train import outputs

KIND = "embeddings"
VECTORS_FILE = "vectors.txt"
FASTTEXT_DIR = "fasttext"
NEIGHBOURS = 8  # listed for each probe word


def base() -> ml_collections.ConfigDict:
    """The keys of every embeddings experiment; experiments set `model.*` (at least `name`)."""
    config = ml_collections.ConfigDict()
    config.kind = KIND
    config.seed = 0
    config.data = ml_collections.ConfigDict({
        "corpus": "gensim_enwiki,gensim_lee", "files": "", "path": "", "subset": "",
        "text_column": "text", "cache_dir": "", "max_sentence": vocab_lib.MAX_SENTENCE})
    config.model = ml_collections.ConfigDict({"name": ""})
    config.eval = ml_collections.ConfigDict({
        "restrict_vocab": 300000, "wordsim353": "", "simlex999": "", "analogies": "",
        "neighbours": "king,paris,computer,running,war"})
    return config


# model.name -> the module whose `train(sentences, *, seed, **model)` makes the vectors.
MODELS = {"word2vec": "dlx.embeddings.word2vec", "fasttext": "dlx.embeddings.fasttext",
          "glove": "dlx.embeddings.glove", "ppmi_svd": "dlx.embeddings.count"}


def trainer(name: str) -> Callable:
    """The `train` function of model `name`; its keyword arguments are the `model.*` keys."""
    return importlib.import_module(MODELS[name]).train


def train_vectors(name: str, sentences: list[list[str]], seed: int, **hyper) -> KeyedVectors:
    """The vectors of the vocabulary (frequent words first) that model `name` learns."""
    result = trainer(name)(sentences, seed=seed, **hyper)
    if isinstance(result, KeyedVectors):  # fastText's, which also answers unseen words
        return result
    vocab, vectors_VD = result
    return KeyedVectors(vocab.words, vectors_VD)


def hyperparameters(config: ml_collections.ConfigDict) -> dict:
    """`model.*` without `name`: the trainer's keyword arguments."""
    return {key: value for key, value in config.model.to_dict().items() if key != "name"}


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the keys an embeddings run needs and that `model.*` are arguments its trainer
    takes, before the corpus is read."""
    missing = [key for key in ("seed", "data", "model", "eval") if key not in config]
    if missing:
        raise DlxError(f"config {config.get('name', '?')} lacks {', '.join(missing)} (start "
                       f"embeddings experiments from dlx.embeddings.experiment.base())")
    name = config.model.get("name", "")
    if name not in MODELS:
        raise DlxError(f"model.name={name!r} is not a word-vector model; expected one of: "
                       f"{', '.join(MODELS)}")
    accepted = set(inspect.signature(trainer(name)).parameters) - {"sentences", "seed"}
    unknown = sorted(set(hyperparameters(config)) - accepted)
    if unknown:
        raise DlxError(f"model.{unknown[0]} is not a setting of {name}; expected any of: "
                       f"{', '.join(sorted(accepted))}")
    if config.data.max_sentence < 1:
        raise DlxError(f"data.max_sentence={config.data.max_sentence} must be a positive "
                       f"number of tokens")
    if config.eval.restrict_vocab < 1:
        raise DlxError(f"eval.restrict_vocab={config.eval.restrict_vocab} must be a positive "
                       f"number of words")


def evaluation(kv: KeyedVectors, eval_config: ml_collections.ConfigDict) -> dict:
    """The similarity and analogy scores of `kv`, and the neighbours of the probe words."""
    scores = evaluate_lib.evaluate_all(
        kv, eval_config.restrict_vocab, eval_config.wordsim353 or None,
        eval_config.simlex999 or None, eval_config.analogies or None)
    neighbours = {}
    for word in config_lib.names(eval_config.neighbours):
        try:
            neighbours[word] = [[other, round(score, 4)]
                                for other, score in kv.most_similar(word, topn=NEIGHBOURS)]
        except KeyError:
            neighbours[word] = None  # out of vocabulary (fastText answers even then)
    return {**scores, "neighbours": neighbours}


def _check_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict | None:
    """The saved summary when `workdir` holds this finished run, None when it holds nothing of
    it; an error when it holds another run."""
    saved_path = workdir / "config.json"
    if not saved_path.exists():
        return None
    try:
        saved = json.loads(saved_path.read_text())
    except json.JSONDecodeError:
        raise DlxError(f"{saved_path} is not valid JSON; remove it or choose another "
                       f"--workdir") from None
    current = json.loads(config.to_json())
    if saved != current:
        changed = sorted(key for key in set(saved) | set(current)
                         if saved.get(key) != current.get(key))
        raise DlxError(f"workdir {workdir} holds a run of {saved.get('name')!r} with different "
                       f"{', '.join(changed)}; use the same config or another --workdir")
    summary_path = workdir / "summary.json"
    return json.loads(summary_path.read_text()) if summary_path.exists() else None


def _print_scores(name: str, figures: dict, neighbours: dict) -> None:
    lines = [f"{name}: WordSim-353 rho {figures['wordsim353']:.3f} (OOV "
             f"{figures['wordsim353_oov']:.1%}), SimLex-999 rho {figures['simlex999']:.3f} (OOV "
             f"{figures['simlex999_oov']:.1%}), analogies {figures['analogy']:.1%} (OOV "
             f"{figures['analogy_oov']:.1%})"]
    for word, found in neighbours.items():
        listed = ", ".join(other for other, _ in found) if found else "(not in the vocabulary)"
        lines.append(f"  {word}: {listed}")
    print("\n".join(lines), file=sys.stderr)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains, saves and evaluates the vectors of `config` in `workdir`; returns the summary."""
    workdir = pathlib.Path(workdir)
    done = _check_workdir(config, workdir)
    if done is not None:
        return done
    outputs.write_json(workdir / "config.json", config.to_dict())
    sentences = vocab_lib.sentences(text.documents(config.data), config.data.max_sentence)
    corpus_words = sum(map(len, sentences))
    start = time.perf_counter()
    kv = train_vectors(config.model.name, sentences, config.seed, **hyperparameters(config))
    train_s = time.perf_counter() - start
    kv.save_word2vec_format(workdir / VECTORS_FILE)
    if hasattr(kv, "save"):
        kv.save(workdir / FASTTEXT_DIR)
    scores = evaluation(kv, config.eval)
    outputs.write_json(workdir / "eval.json", scores)
    figures = evaluate_lib.headline(scores)
    summary = {"experiment": config.name, "model": config.model.name,
               "corpus": config.data.corpus, "sentences": len(sentences),
               "corpus_words": corpus_words, "vocab_size": len(kv), "dim": kv.vector_size,
               "train_s": round(train_s, 2),
               "words_per_s": round(corpus_words * config.model.get("epochs", 1) / train_s, 1),
               **figures}
    _print_scores(config.name, figures, scores["neighbours"])
    outputs.write_json(workdir / "summary.json", summary)
    return summary


def load_vectors(workdir: str | pathlib.Path) -> KeyedVectors:
    """The vectors a finished run saved in `workdir` (fastText's whole model when present)."""
    workdir = pathlib.Path(workdir)
    if (workdir / FASTTEXT_DIR).is_dir():
        from dlx.embeddings import fasttext
        return fasttext.FastTextVectors.load(workdir / FASTTEXT_DIR)
    if not (workdir / VECTORS_FILE).exists():
        raise DlxError(f"no {VECTORS_FILE} in {workdir}; train first with dlx train --workdir "
                       f"{workdir}")
    return KeyedVectors.load_word2vec_format(workdir / VECTORS_FILE)


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """`dlx eval`: the scores of the vectors saved in `workdir`, with `config.eval`'s sets."""
    kv = load_vectors(workdir)
    scores = evaluation(kv, config.eval)
    _print_scores(config.name, evaluate_lib.headline(scores), scores["neighbours"])
    return {"eval": evaluate_lib.headline(scores), "neighbours": scores["neighbours"]}

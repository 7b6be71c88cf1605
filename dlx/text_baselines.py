"""Text-classification baselines: `dlx train` of a config with `kind = "text_baselines"`.

On one labelled set (`dlx.data.labelled_text`, the same split `bert_classify` uses) a run fits
logistic regression (scikit-learn, L2, C = `model.C`) on three document representations:
- `bag_of_words`: word counts (scikit-learn's `CountVectorizer` on `dlx.embeddings.vocab`
  tokens, words seen in at least `model.min_df` training documents);
- `tfidf`: the same counts reweighted by smoothed inverse document frequency, rows L2-normalised
  (`TfidfVectorizer`);
- `word_vectors`: the mean of the document's word vectors (words without a vector skipped; a
  document with none is all zeros). The vectors are word2vec skip-gram vectors trained in the
  run on `model.vector_corpus` (by default gensim's enwiki + Lee, none of the labelled texts),
  or read from `model.vectors` (a word2vec-format file, e.g. a word-vector run's vectors.txt).
Each gets held-out accuracy and macro-F1 (`dlx.metrics`) beside the majority-class baseline.
A BERT row comes from a fine-tuned `bert_classify` run (`model.bert_workdir`: its summary.json)
when one is given. Everything is written to summary.json at the end (a run takes seconds).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import ml_collections
import numpy as np

from dlx import metrics
from dlx.data import labelled_text, text
from dlx.embeddings import vocab as vocab_lib
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError
from dlx.train import outputs

KIND = "text_baselines"
REPRESENTATIONS = ("bag_of_words", "tfidf", "word_vectors")


def base() -> ml_collections.ConfigDict:
    """The keys of a text-baselines experiment."""
    config = ml_collections.ConfigDict()
    config.kind = KIND
    config.seed = 0
    config.data = ml_collections.ConfigDict({"corpus": "newsgroups", "files": "",
                                             "held_out": 0.25})
    config.model = ml_collections.ConfigDict({
        "C": 1.0, "min_df": 2, "vectors": "", "vector_corpus": "gensim_enwiki,gensim_lee",
        "dim": 100, "bert_workdir": ""})
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the settings before any text is read."""
    if config.model.C <= 0:
        raise DlxError(f"model.C={config.model.C} must be > 0 (inverse regularisation strength)")
    if config.model.min_df < 1:
        raise DlxError(f"model.min_df={config.model.min_df} must be a positive document count")
    if config.model.dim < 1:
        raise DlxError(f"model.dim={config.model.dim} must be a positive number of dimensions")


def mean_vectors(texts: list[str], kv: KeyedVectors) -> np.ndarray:
    """(N, D) float32: each text's mean word vector over its words that have one (else zeros)."""
    rows_ND = np.zeros((len(texts), kv.vector_size), np.float32)
    for i, document in enumerate(texts):
        known = [kv.get_index(word) for word in vocab_lib.tokenize(document) if word in kv]
        if known:
            rows_ND[i] = kv.vectors_VD[known].mean(axis=0)
    return rows_ND


def _word_vectors(config: ml_collections.ConfigDict) -> KeyedVectors:
    if config.model.vectors:
        return KeyedVectors.load_word2vec_format(config.model.vectors)
    from dlx.embeddings import word2vec
    documents = text.documents(ml_collections.ConfigDict({"corpus": config.model.vector_corpus}))
    vocab, vectors_VD = word2vec.train(vocab_lib.sentences(documents), dim=config.model.dim,
                                       seed=config.seed, progress=False)
    return KeyedVectors(vocab.words, vectors_VD)


def features(name: str, splits: labelled_text.LabelledSplits, config: ml_collections.ConfigDict
             ) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) feature matrices of representation `name`."""
    if name == "word_vectors":
        kv = _word_vectors(config)
        return mean_vectors(splits.train_texts, kv), mean_vectors(splits.test_texts, kv)
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    vectorizer_class = TfidfVectorizer if name == "tfidf" else CountVectorizer
    vectorizer = vectorizer_class(tokenizer=vocab_lib.tokenize, lowercase=False,
                                  token_pattern=None, min_df=config.model.min_df)
    return (vectorizer.fit_transform(splits.train_texts),
            vectorizer.transform(splits.test_texts))


def scores(labels_N: np.ndarray, predictions_N: np.ndarray, classes: int) -> dict:
    """Held-out accuracy and macro-F1."""
    return {"accuracy": metrics.accuracy(labels_N, predictions_N),
            "macro_f1": metrics.precision_recall_f1(labels_N, predictions_N, classes)[2]}


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Fits and scores every representation; writes and returns summary.json."""
    from sklearn.linear_model import LogisticRegression
    workdir = pathlib.Path(workdir)
    splits = labelled_text.load(config.data)
    classes = len(splits.label_names)
    majority = int(np.bincount(splits.train_labels, minlength=classes).argmax())
    rows = {"majority_class": scores(splits.test_labels,
                                     np.full_like(splits.test_labels, majority), classes)}
    for name in REPRESENTATIONS:
        start = time.perf_counter()
        train_X, test_X = features(name, splits, config)
        classifier = LogisticRegression(C=config.model.C, max_iter=5000)
        classifier.fit(train_X, splits.train_labels)
        rows[name] = {**scores(splits.test_labels, classifier.predict(test_X), classes),
                      "features": int(train_X.shape[1]),
                      "seconds": round(time.perf_counter() - start, 2)}
    if config.model.bert_workdir:
        rows["bert_fine_tuned"] = _bert_row(pathlib.Path(config.model.bert_workdir))
    summary = {"experiment": config.name, "corpus": config.data.corpus,
               "train_texts": len(splits.train_texts), "test_texts": len(splits.test_texts),
               "label_names": list(splits.label_names), "results": rows}
    outputs.write_json(workdir / "config.json", config.to_dict())
    outputs.write_json(workdir / "summary.json", summary)
    for name, row in rows.items():
        f1 = "" if row["macro_f1"] is None else f", macro-F1 {row['macro_f1']:.3f}"
        print(f"{name:>16}: accuracy {row['accuracy']:.1%}{f1}", file=sys.stderr)
    return summary


def _bert_row(workdir: pathlib.Path) -> dict:
    """The held-out accuracy a finished bert_classify run in `workdir` reported."""
    path = workdir / "summary.json"
    if not path.exists():
        raise DlxError(f"model.bert_workdir: no summary.json in {workdir}; train bert_classify "
                       f"there first")
    summary = json.loads(path.read_text())
    return {"accuracy": summary["eval"]["test"]["accuracy"], "macro_f1": None,
            "from": str(path)}


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """`dlx eval`: the saved summary (the baselines are refitted by `dlx train`)."""
    path = pathlib.Path(workdir) / "summary.json"
    if not path.exists():
        raise DlxError(f"no summary.json in {workdir}; run dlx train --workdir {workdir} first")
    return json.loads(path.read_text())

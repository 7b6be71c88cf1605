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

With `model.augment` = n > 0 every representation is fitted a second time on the training texts
plus n EDA variants of each (`dlx.data.text_augment.augment`, rates `model.augment_alpha`,
synonyms and insertions from the run's word vectors, English stopwords kept, a generator seeded
with `seed`; held-out texts untouched): `results_augmented` beside `results` in summary.json, and
augment.png, held-out accuracy with and without augmentation per representation.
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
        "dim": 100, "bert_workdir": "", "augment": 0, "augment_alpha": 0.1})
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the settings before any text is read."""
    if config.model.C <= 0:
        raise DlxError(f"model.C={config.model.C} must be > 0 (inverse regularisation strength)")
    if config.model.min_df < 1:
        raise DlxError(f"model.min_df={config.model.min_df} must be a positive document count")
    if config.model.dim < 1:
        raise DlxError(f"model.dim={config.model.dim} must be a positive number of dimensions")
    augment = config.model.augment
    if isinstance(augment, bool) or not isinstance(augment, int) or augment < 0:
        raise DlxError(f"model.augment={augment!r} must be an int >= 0 (EDA variants per text)")
    if not 0.0 < config.model.augment_alpha <= 1.0:
        raise DlxError(f"model.augment_alpha={config.model.augment_alpha} must be in (0, 1]")


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
    from dlx.embeddings import experiment
    documents = text.documents(ml_collections.ConfigDict({"corpus": config.model.vector_corpus}))
    return experiment.train_vectors("word2vec", vocab_lib.sentences(documents), config.seed,
                                    dim=config.model.dim, progress=False)


def features(name: str, train_texts: list[str], test_texts: list[str],
             config: ml_collections.ConfigDict, kv: KeyedVectors | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) feature matrices of representation `name` (`kv` for word_vectors)."""
    if name == "word_vectors":
        return mean_vectors(train_texts, kv), mean_vectors(test_texts, kv)
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    vectorizer_class = TfidfVectorizer if name == "tfidf" else CountVectorizer
    vectorizer = vectorizer_class(tokenizer=vocab_lib.tokenize, lowercase=False,
                                  token_pattern=None, min_df=config.model.min_df)
    return vectorizer.fit_transform(train_texts), vectorizer.transform(test_texts)


class _CachedNeighbours:
    """`kv`'s `in` and `most_similar(word, topn)`, each word's answer computed once per run."""

    def __init__(self, kv: KeyedVectors):
        self.kv, self.cache = kv, {}

    def __contains__(self, word: object) -> bool:
        return word in self.kv

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        if (word, topn) not in self.cache:
            self.cache[word, topn] = self.kv.most_similar(word, topn=topn)
        return self.cache[word, topn]


def augment_texts(texts: list[str], labels_N: np.ndarray, num_aug: int, alpha: float,
                  kv: KeyedVectors, seed: int) -> tuple[list[str], np.ndarray]:
    """The texts then `num_aug` EDA variants of each (space-joined tokens), with labels:
    (1 + num_aug) * N texts and ((1 + num_aug) * N,) labels; the same for the same seed."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    from dlx.data import text_augment
    rng = np.random.default_rng(seed)
    neighbours = _CachedNeighbours(kv)
    variants, variant_labels = [], []
    for document, label in zip(texts, labels_N):
        for tokens in text_augment.augment(
                vocab_lib.tokenize(document), rng, num_aug=num_aug, neighbours=neighbours,
                alpha_sr=alpha, alpha_ri=alpha, alpha_rs=alpha, p_rd=alpha,
                stopwords=ENGLISH_STOP_WORDS):
            variants.append(" ".join(tokens))
            variant_labels.append(label)
    labels_out_N = np.concatenate([labels_N, np.asarray(variant_labels, labels_N.dtype)])
    return list(texts) + variants, labels_out_N


def fit_all(train_texts: list[str], train_labels_N: np.ndarray,
            splits: labelled_text.LabelledSplits, config: ml_collections.ConfigDict,
            kv: KeyedVectors) -> dict:
    """Held-out scores of logistic regression on each representation fitted on these texts."""
    from sklearn.linear_model import LogisticRegression
    classes = len(splits.label_names)
    rows = {}
    for name in REPRESENTATIONS:
        start = time.perf_counter()
        train_X, test_X = features(name, train_texts, splits.test_texts, config, kv)
        classifier = LogisticRegression(C=config.model.C, max_iter=5000)
        classifier.fit(train_X, train_labels_N)
        rows[name] = {**scores(splits.test_labels, classifier.predict(test_X), classes),
                      "features": int(train_X.shape[1]),
                      "seconds": round(time.perf_counter() - start, 2)}
    return rows


def plot_augment(results: dict, augmented: dict, path: pathlib.Path, title: str) -> None:
    """Bar chart of held-out accuracy with and without augmentation per representation (PNG)."""
    fig, ax = outputs.figure(size=(6, 4))
    x_R = np.arange(len(REPRESENTATIONS))
    for offset, (label, rows) in zip((-0.2, 0.2), (("without", results), ("with", augmented))):
        bars = ax.bar(x_R + offset, [rows[name]["accuracy"] for name in REPRESENTATIONS], 0.4,
                      label=f"{label} augmentation")
        ax.bar_label(bars, fmt="%.3f", fontsize="small")
    ax.axhline(results["majority_class"]["accuracy"], color="grey", linestyle="--",
               label="majority class")
    ax.set_xticks(x_R, REPRESENTATIONS)
    ax.set(ylabel="held-out accuracy", ylim=(0.0, 1.05), title=title)
    ax.legend(fontsize="small", loc="lower right")
    outputs.save_figure(fig, path)


def scores(labels_N: np.ndarray, predictions_N: np.ndarray, classes: int) -> dict:
    """Held-out accuracy and macro-F1."""
    return {"accuracy": metrics.accuracy(labels_N, predictions_N),
            "macro_f1": metrics.precision_recall_f1(labels_N, predictions_N, classes)[2]}


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Fits and scores every representation (and with augmentation); writes summary.json."""
    workdir = pathlib.Path(workdir)
    splits = labelled_text.load(config.data)
    classes = len(splits.label_names)
    majority = int(np.bincount(splits.train_labels, minlength=classes).argmax())
    majority_row = scores(splits.test_labels, np.full_like(splits.test_labels, majority), classes)
    kv = _word_vectors(config)
    rows = {"majority_class": majority_row,
            **fit_all(splits.train_texts, splits.train_labels, splits, config, kv)}
    if config.model.bert_workdir:
        rows["bert_fine_tuned"] = _bert_row(pathlib.Path(config.model.bert_workdir))
    summary = {"experiment": config.name, "corpus": config.data.corpus,
               "train_texts": len(splits.train_texts), "test_texts": len(splits.test_texts),
               "label_names": list(splits.label_names), "results": rows}
    tables = {"results": rows}
    if config.model.augment:
        start = time.perf_counter()
        texts, labels_N = augment_texts(splits.train_texts, splits.train_labels,
                                        config.model.augment, config.model.augment_alpha, kv,
                                        config.seed)
        seconds = round(time.perf_counter() - start, 2)
        augmented = {"majority_class": majority_row, **fit_all(texts, labels_N, splits, config, kv)}
        summary.update({"train_texts_augmented": len(texts), "augment_seconds": seconds,
                        "results_augmented": augmented})
        tables["results_augmented"] = augmented
        plot_augment(rows, augmented, workdir / "augment.png",
                     f"{config.name}: EDA x{config.model.augment}, alpha "
                     f"{config.model.augment_alpha}")
    outputs.write_json(workdir / "config.json", config.to_dict())
    outputs.write_json(workdir / "summary.json", summary)
    for table, table_rows in tables.items():
        for name, row in table_rows.items():
            f1 = "" if row["macro_f1"] is None else f", macro-F1 {row['macro_f1']:.3f}"
            print(f"{table:>17} {name:>16}: accuracy {row['accuracy']:.1%}{f1}", file=sys.stderr)
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

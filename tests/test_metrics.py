"""dlx.metrics against scikit-learn, sacrebleu and rouge-score on random inputs, plus hand-computed
golden values, the confusion-matrix PNG and the one-line input errors."""

from __future__ import annotations

import math
import sys
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from dlx import metrics
from dlx.errors import DlxError

SEEDS = range(20)
TOL = 1e-12


def _classification_case(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Random labels/predictions; some seeds drop a class from the predictions or the labels,
    or make the predictions perfect or all wrong."""
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    labels = rng.integers(0, num_classes, n)
    predictions = np.where(rng.random(n) < 0.5, labels, rng.integers(0, num_classes, n))
    kind = seed % 5
    if kind == 1:  # The last class is never predicted.
        predictions = np.minimum(predictions, num_classes - 2)
    elif kind == 2:  # Class 0 never occurs in the labels.
        labels = np.maximum(labels, 1)
    elif kind == 3:  # Perfect.
        predictions = labels.copy()
    elif kind == 4:  # Every prediction wrong.
        predictions = (labels + 1) % num_classes
    return labels, predictions, num_classes


def _binary_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random binary labels (both classes) and scores; some seeds with many ties or separable."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 80))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.normal(size=n) + labels * rng.uniform(0, 2)
    kind = seed % 4
    if kind == 1:  # Heavy ties.
        scores = np.round(scores * 2) / 2
    elif kind == 2:  # Perfectly separated.
        scores = labels + 0.1 * rng.random(n)
    elif kind == 3:  # Perfectly reversed.
        scores = -labels + 0.1 * rng.random(n)
    return labels, scores


@pytest.fixture(scope="module")
def skm():
    return pytest.importorskip("sklearn.metrics")


# --- Classification against scikit-learn ---------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_classification_matches_sklearn(skm, seed):
    labels, predictions, num_classes = _classification_case(seed)
    classes = list(range(num_classes))
    assert metrics.accuracy(labels, predictions) == pytest.approx(
        skm.accuracy_score(labels, predictions), abs=TOL)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(labels, predictions, num_classes),
        skm.confusion_matrix(labels, predictions, labels=classes))
    for average in ("macro", "micro", "weighted", None):
        ours = metrics.precision_recall_f1(labels, predictions, num_classes, average)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # zero_division=0 must not need to warn.
            theirs = skm.precision_recall_fscore_support(
                labels, predictions, labels=classes, average=average, zero_division=0)[:3]
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=f"average={average}")


@pytest.mark.parametrize("seed", SEEDS)
def test_ranking_matches_sklearn(skm, seed):
    labels, scores = _binary_case(seed)
    assert metrics.roc_auc(labels, scores) == pytest.approx(
        skm.roc_auc_score(labels, scores), abs=TOL)
    assert metrics.average_precision(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=TOL)


@pytest.mark.parametrize("seed", range(10))
def test_one_vs_rest_matches_sklearn(skm, seed):
    rng = np.random.default_rng(200 + seed)
    num_classes = int(rng.integers(3, 6))
    n = int(rng.integers(num_classes, 60))
    labels = np.r_[np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)]
    logits = rng.normal(size=(n, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    if seed % 2:
        logits = np.round(logits)  # Ties.
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert metrics.roc_auc_ovr(labels, probs) == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=TOL)
    assert metrics.average_precision_ovr(labels, probs) == pytest.approx(
        skm.average_precision_score(labels, probs, average="macro"), abs=TOL)


def test_roc_auc_is_the_mann_whitney_statistic():
    """AUC = P(positive outscores negative) + P(tie) / 2, counted over all pairs."""
    for seed in SEEDS:
        labels, scores = _binary_case(seed)
        pos, neg = scores[labels == 1], scores[labels == 0]
        diff = pos[:, None] - neg[None, :]
        expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
        assert metrics.roc_auc(labels, scores) == pytest.approx(expected, abs=TOL)


def test_jax_arrays_are_accepted(skm):
    labels, predictions, num_classes = _classification_case(7)
    assert metrics.accuracy(jnp.asarray(labels), jnp.asarray(predictions)) == pytest.approx(
        skm.accuracy_score(labels, predictions), abs=TOL)
    labels, scores = _binary_case(3)
    assert metrics.roc_auc(jnp.asarray(labels), jnp.asarray(scores, jnp.float32)) == \
        pytest.approx(skm.roc_auc_score(labels, np.float32(scores)), abs=TOL)


# --- Golden values by hand -----------------------------------------------------------------------

def test_golden_classification():
    labels = [0, 0, 0, 1, 1]
    predictions = [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, predictions, 2),
                                  [[2, 1], [0, 2]])
    # Class 0: P = 2/2, R = 2/3, F1 = 4/5; class 1: P = 2/3, R = 2/2, F1 = 4/5.
    precision, recall, f1 = metrics.precision_recall_f1(labels, predictions, 2, average=None)
    np.testing.assert_allclose(precision, [1, 2 / 3])
    np.testing.assert_allclose(recall, [2 / 3, 1])
    np.testing.assert_allclose(f1, [0.8, 0.8])
    assert metrics.precision_recall_f1(labels, predictions, 2, "micro") == pytest.approx(
        (0.8, 0.8, 0.8))
    # Class 2 has no support and no predictions: 0, counted in the macro mean.
    assert metrics.precision_recall_f1(labels, predictions, 3, "macro")[2] == pytest.approx(
        1.6 / 3)
    assert metrics.accuracy(labels, predictions) == 0.8


def test_golden_ranking():
    # Pairs (pos, neg): 0.9>0.1, 0.9>0.5, 0.5=0.5 (half), 0.5>0.1 -> 3.5 / 4.
    assert metrics.roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == 0.875
    # Thresholds 0.9 (P=1, R=1/2), 0.5 (P=2/3, R=1): AP = 1/2 * 1 + 1/2 * 2/3.
    assert metrics.average_precision([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(5 / 6)
    assert metrics.pr_auc is metrics.average_precision
    assert metrics.roc_auc([0, 1], [0.3, 0.3]) == 0.5


def test_perplexity():
    vocab = 37
    assert metrics.perplexity(math.log(vocab)) == pytest.approx(vocab, rel=1e-12)
    uniform = np.full((3, 5), -math.log(vocab))
    assert metrics.perplexity_from_log_probs(uniform) == pytest.approx(vocab, rel=1e-12)
    log_probs = np.array([[-1.0, -2.0, -50.0], [-3.0, -100.0, -100.0]])
    where = np.array([[1, 1, 0], [1, 0, 0]])
    assert metrics.perplexity_from_log_probs(log_probs, where) == pytest.approx(math.e ** 2)
    assert metrics.perplexity(1e4) == math.inf
    assert metrics.perplexity_from_log_probs([-1.0, -np.inf]) == math.inf


def test_perplexity_matches_the_cross_entropy_loss():
    from dlx.losses import cross_entropy
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 11)).astype(np.float32)
    labels = rng.integers(0, 11, 16)
    log_probs = logits - np.log(np.exp(logits.astype(np.float64)).sum(axis=1, keepdims=True))
    loss = float(cross_entropy(jnp.asarray(logits), jnp.asarray(labels)))
    assert metrics.perplexity_from_log_probs(log_probs[np.arange(16), labels]) == \
        pytest.approx(metrics.perplexity(loss), rel=1e-5)


def test_confusion_matrix_png(tmp_path):
    path = tmp_path / "sub" / "confusion.png"
    matrix = metrics.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1], 3)
    assert metrics.plot_confusion_matrix(matrix, ["a", "b", "c"], path) == path
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in path.parent.iterdir()] == ["confusion.png"]  # No temp file left.
    metrics.plot_confusion_matrix(matrix / matrix.sum(1, keepdims=True), "abc", path)
    assert path.read_bytes().startswith(b"\x89PNG")


# --- Generation against sacrebleu and rouge-score ------------------------------------------------

WORDS = ("the cat dog sat on mat a an big small red house , . ! runs ran quickly it 's "
         "don't 3.5 $ (x) New-York").split()
REAL = [
    ("The cat sat on the mat.", ["The cat is sitting on the mat.", "A cat sat on a mat."]),
    ("It is a guide to action which ensures that the military always obeys the commands of the "
     "party.", ["It is a guide to action that ensures that the military will forever heed Party "
                "commands.", "It is the guiding principle which guarantees the military forces "
                "always being under the command of the Party."]),
    ("he read the book because he was interested in world history",
     ["he was interested in world history because he read the book",
      "because he was interested in world history he read the book"]),
]


def _random_corpus(seed: int, num_refs: int) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(300 + seed)

    def sentence(lo: int = 0) -> str:
        return " ".join(rng.choice(WORDS, int(rng.integers(lo, 12))))

    n = int(rng.integers(1, 8))
    hyps, refs = [], []
    for _ in range(n):
        rs = [sentence(1) for _ in range(num_refs)]
        # Often a noisy copy of a reference, so that higher-order n-grams match.
        hyp = rs[0].split()
        hyp = " ".join(w for w in hyp if rng.random() > 0.2) if rng.random() < 0.6 else sentence()
        hyps.append(hyp)
        refs.append(rs)
    return hyps, refs


def _corpora():
    for seed in SEEDS:
        yield _random_corpus(seed, 1 + seed % 3)
    yield [h for h, _ in REAL], [rs for _, rs in REAL]
    yield [h for h, _ in REAL], [rs[0] for _, rs in REAL]
    yield ["the cat"], ["the cat sat on the mat"]  # No 3- or 4-grams in the hypothesis.
    yield ["mat on sat cat the"], ["the cat sat on the mat"]  # Only unigrams match.
    yield ["", "the"], ["a cat", "the"]
    yield ["the cat sat", "a dog ran"], [["the cat sat"], ["a dog", "the dog ran", "dog ran"]]


def _streams(refs):
    """Per-hypothesis reference lists -> sacrebleu's reference streams."""
    refs = [[r] if isinstance(r, str) else r for r in refs]
    width = max(map(len, refs))
    return [[rs[k] if k < len(rs) else None for rs in refs] for k in range(width)]


def test_bleu_and_chrf_match_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    checked = 0
    for hyps, refs in _corpora():
        expected = sacrebleu.corpus_bleu(hyps, _streams(refs)).score
        assert metrics.bleu(hyps, refs) == pytest.approx(expected, abs=1e-9), (hyps, refs)
        expected = sacrebleu.corpus_bleu(hyps, _streams(refs), lowercase=True).score
        assert metrics.bleu(hyps, refs, lowercase=True) == pytest.approx(expected, abs=1e-9)
        assert metrics.chrf(hyps, refs) == pytest.approx(
            sacrebleu.corpus_chrf(hyps, _streams(refs)).score, abs=1e-9)
        assert metrics.chrf(hyps, refs, word_order=2) == pytest.approx(
            sacrebleu.corpus_chrf(hyps, _streams(refs), word_order=2).score, abs=1e-9)
        checked += expected > 0
    assert checked >= 10  # Most corpora score above 0, so the n-gram path is exercised.


def test_bleu_golden():
    pytest.importorskip("sacrebleu")
    assert metrics.bleu(["The cat sat on the mat."], ["The cat sat on the mat."]) == \
        pytest.approx(100.0)
    assert metrics.bleu(["a b c d"], ["e f g h"]) == 0.0
    # c = 4 < r = 8: p_n = 1 for all n, BP = e^(1 - 8/4).
    assert metrics.bleu(["a b c d"], ["a b c d e f g h"]) == pytest.approx(100 * math.exp(-1))
    # Unigrams 3/4 ("a" clipped to 1), bigrams 3/3, trigrams 2/2, 4-grams 0/1 -> 1 / (2 * 1);
    # c = 4 >= r = 3, so BP = 1.
    assert metrics.bleu(["a b c a"], [["a b c", "b c a"]]) == pytest.approx(
        100 * (0.75 * 1 * 1 * 0.5) ** 0.25)


def test_rouge_matches_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    types = ("rouge1", "rouge2", "rouge3", "rougeL")
    for stem in (False, True):
        scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=stem)
        # The last two: references tied on F1 with different P/R; the first one counts.
        extra = [(["Running dogs ran."], ["The dog runs"]), (["a b"], [["a b c d", "a"]]),
                 (["a b"], [["a", "a b c d"]])]
        for hyps, refs in list(_corpora()) + extra:
            refs_lists = [[r] if isinstance(r, str) else r for r in refs]
            scores = [scorer.score_multi(rs, h) for h, rs in zip(hyps, refs_lists)]
            ours = metrics.rouge(hyps, refs, types, use_stemmer=stem)
            for t in types:
                for key, field in (("precision", "precision"), ("recall", "recall"),
                                   ("f1", "fmeasure")):
                    expected = np.mean([getattr(s[t], field) for s in scores])
                    assert ours[t][key] == pytest.approx(expected, abs=TOL), (t, key, hyps)


def test_rouge_golden():
    pytest.importorskip("rouge_score")
    # 5 of 6 reference unigrams; LCS "the cat on the mat" = 5; bigrams: the cat, on the, the mat.
    scores = metrics.rouge(["the cat on the mat"], ["The cat sat on the mat."])
    assert scores["rouge1"] == pytest.approx({"precision": 1.0, "recall": 5 / 6, "f1": 10 / 11})
    assert scores["rougeL"] == scores["rouge1"]
    assert scores["rouge2"]["precision"] == pytest.approx(3 / 4)
    assert scores["rouge2"]["recall"] == pytest.approx(3 / 5)


# --- One-line errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: metrics.accuracy([0, 1], [0]), "labels_N has 2 entries but predictions_N has 1"),
    (lambda: metrics.accuracy([], []), "labels_N is empty"),
    (lambda: metrics.accuracy([[0, 1]], [[0, 1]]), "labels_N must be 1-D"),
    (lambda: metrics.accuracy([0.5], [0]), "labels_N must hold integers"),
    (lambda: metrics.confusion_matrix([0, 3], [0, 1], 3), "labels_N holds 3, outside [0, 3)"),
    (lambda: metrics.confusion_matrix([0, 1], [-1, 1], 3), "predictions_N holds -1"),
    (lambda: metrics.precision_recall_f1([0], [0], 2, "binary"), "average='binary' is unknown"),
    (lambda: metrics.roc_auc([1, 1], [0.2, 0.3]), "labels_N holds only class 1"),
    (lambda: metrics.roc_auc([0, 2], [0.2, 0.3]), "expected binary labels in {0, 1}"),
    (lambda: metrics.roc_auc([0, 1], [0.2, np.nan]), "scores_N holds NaN or inf"),
    (lambda: metrics.roc_auc([0, 1], [0.2]), "labels_N has 2 entries but scores_N has 1"),
    (lambda: metrics.average_precision([0, 0], [0.2, 0.3]), "no positive (1) example"),
    (lambda: metrics.roc_auc_ovr([0, 1, 1], np.ones((3, 3))), "class 2 never occurs"),
    (lambda: metrics.roc_auc_ovr([0, 1], np.ones(2)), "scores_NC must be 2-D"),
    (lambda: metrics.perplexity(-1.0), "expected a mean negative log-likelihood >= 0"),
    (lambda: metrics.perplexity_from_log_probs([0.5]), "expected log-probabilities <= 0"),
    (lambda: metrics.perplexity_from_log_probs([-1.0], [False]), "no real token"),
    (lambda: metrics.plot_confusion_matrix(np.ones((2, 3)), "ab", "x.png"), "square matrix"),
    (lambda: metrics.plot_confusion_matrix(np.ones((2, 2)), "abc", "x.png"), "one name per"),
    (lambda: metrics.bleu(["a"], ["a", "b"]), "hypotheses has 1 sentences but references has 2"),
    (lambda: metrics.bleu([], []), "hypotheses is empty"),
    (lambda: metrics.bleu("a", ["a"]), "got a bare str"),
    (lambda: metrics.chrf(["a"], [[]]), "references[0] must be a string or a non-empty list"),
    (lambda: metrics.rouge(["a"], ["a"], types=("rougeLsum",)), "ROUGE types ['rougeLsum']"),
])
def test_errors_are_one_line(call, message):
    with pytest.raises(DlxError) as error:
        call()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_library_names_the_package(monkeypatch):
    for module in ("sacrebleu", "sacrebleu.tokenizers", "sacrebleu.tokenizers.tokenizer_13a"):
        monkeypatch.setitem(sys.modules, module, None)  # Importing it now raises ImportError.
    with pytest.raises(DlxError, match="pip install sacrebleu"):
        metrics.bleu(["a"], ["a"])
    with pytest.raises(DlxError, match="pip install sacrebleu"):
        metrics.chrf(["a"], ["a"])
    monkeypatch.setitem(sys.modules, "rouge_score.tokenizers", None)
    with pytest.raises(DlxError, match="pip install rouge-score"):
        metrics.rouge(["a"], ["a"])

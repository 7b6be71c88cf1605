"""Evaluation metrics on the host in NumPy: classification, ranking, language modelling, generation.

Classification (integer labels in [0, C); rows of a confusion matrix are the true class):
  `accuracy`, `confusion_matrix`, `precision_recall_f1` (per class, macro, micro, weighted; a
  0/0 ratio counts as 0, as scikit-learn's `zero_division=0`), `plot_confusion_matrix` (a PNG).
Ranking (binary labels in {0, 1} and real scores, higher = more positive):
  `roc_auc` (trapezoid under the ROC curve over distinct thresholds, so tied scores count half),
  `average_precision` = `pr_auc` (the step-wise sum, not a trapezoid), and one-vs-rest macro
  versions `roc_auc_ovr` / `average_precision_ovr` for scores_NC.
Language modelling: `perplexity` (from a mean NLL) and `perplexity_from_log_probs`.
Generation (strings; one or several references per hypothesis):
  `bleu` (corpus BLEU written out here, on sacrebleu's '13a' tokens), `chrf` (sacrebleu's chrF,
  wrapped) and `rouge` (ROUGE-N and ROUGE-L written out here, on rouge-score's tokens).

Each hand-written metric equals scikit-learn / sacrebleu / rouge-score on the same inputs (see
tests/test_metrics.py). Optional libraries are imported inside the functions that use them. Bad
inputs raise `DlxError` with a one-line message. NumPy or JAX arrays are accepted.
"""

from __future__ import annotations

import collections
import importlib
import math
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlx.errors import DlxError

AVERAGES = ("macro", "micro", "weighted", None)
BLEU_MAX_ORDER = 4


def _require(module: str, package: str) -> Any:
    """Imports an optional library, or says which pip package provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise DlxError(f"this metric needs the {package!r} package: pip install {package} "
                       f"({error})") from None


# --- Input checks --------------------------------------------------------------------------------

def _vector(name: str, x: Any) -> np.ndarray:
    """`x` as a non-empty 1-D array."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise DlxError(f"{name} must be 1-D, got shape {x.shape}")
    if x.size == 0:
        raise DlxError(f"{name} is empty; expected at least one example")
    return x


def _integers(name: str, x: Any) -> np.ndarray:
    """`x` as a non-empty 1-D int64 array (bool or integer dtype)."""
    x = _vector(name, x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise DlxError(f"{name} must hold integers, got dtype {x.dtype}")
    return x.astype(np.int64)


def _same_length(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise DlxError(f"{a_name} has {len(a)} entries but {b_name} has {len(b)}; "
                       "expected one per example")


def _classes(name: str, x: np.ndarray, num_classes: int) -> np.ndarray:
    """Checks that every entry of `x` is a class index in [0, num_classes)."""
    if int(num_classes) < 1:
        raise DlxError(f"num_classes must be >= 1, got {num_classes}")
    bad = (x < 0) | (x >= num_classes)
    if bad.any():
        raise DlxError(f"{name} holds {int(x[bad][0])}, outside [0, {num_classes}); "
                       "expected class indices below num_classes")
    return x


def _label_pair(labels_N: Any, predictions_N: Any,
                num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    labels_N = _integers("labels_N", labels_N)
    predictions_N = _integers("predictions_N", predictions_N)
    _same_length("labels_N", labels_N, "predictions_N", predictions_N)
    if num_classes is not None:
        _classes("labels_N", labels_N, num_classes)
        _classes("predictions_N", predictions_N, num_classes)
    return labels_N, predictions_N


def _finite(name: str, x: np.ndarray) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DlxError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise DlxError(f"{name} holds NaN or inf; expected finite scores")
    return x.astype(np.float64)


def _binary(labels_N: Any, scores_N: Any) -> tuple[np.ndarray, np.ndarray]:
    """Checked binary labels in {0, 1} and finite float64 scores, one per example."""
    labels_N = _integers("labels_N", labels_N)
    scores_N = _finite("scores_N", _vector("scores_N", scores_N))
    _same_length("labels_N", labels_N, "scores_N", scores_N)
    if ((labels_N != 0) & (labels_N != 1)).any():
        raise DlxError(f"labels_N holds {sorted(set(labels_N.tolist()) - {0, 1})[:3]}; "
                       "expected binary labels in {0, 1}")
    return labels_N, scores_N


# --- Classification ------------------------------------------------------------------------------

def accuracy(labels_N: Any, predictions_N: Any) -> float:
    """Scalar: the fraction of examples with predictions_N == labels_N."""
    labels_N, predictions_N = _label_pair(labels_N, predictions_N)
    return float(np.mean(labels_N == predictions_N))


def confusion_matrix(labels_N: Any, predictions_N: Any, num_classes: int) -> np.ndarray:
    """int64 matrix_CC: matrix_CC[i, j] = #examples of true class i predicted as class j."""
    labels_N, predictions_N = _label_pair(labels_N, predictions_N, num_classes)
    counts = np.bincount(labels_N * num_classes + predictions_N, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)


def _divide(numerator_C: np.ndarray, denominator_C: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, with 0/0 (any x/0) defined as 0."""
    numerator_C = np.asarray(numerator_C, np.float64)
    denominator_C = np.asarray(denominator_C, np.float64)
    safe_C = np.where(denominator_C == 0, 1.0, denominator_C)
    return np.where(denominator_C == 0, 0.0, numerator_C / safe_C)


def precision_recall_f1(labels_N: Any, predictions_N: Any, num_classes: int,
                        average: str | None = "macro") -> tuple[Any, Any, Any]:
    """(precision, recall, F1): floats, or float64 arrays _C when `average` is None.

    From the confusion matrix M (rows true): tp_c = M[c, c], predicted_c = sum_i M[i, c],
    support_c = sum_j M[c, j]; precision_c = tp_c / predicted_c, recall_c = tp_c / support_c,
    F1_c = 2 tp_c / (predicted_c + support_c) (the harmonic mean of the two); a 0/0 is 0.
    average="macro": the unweighted mean over all C classes; "weighted": the mean weighted by
    support_c; "micro": the ratios of the sums over classes (all three equal accuracy here).
    """
    if average not in AVERAGES:
        raise DlxError(f"average={average!r} is unknown; expected one of {AVERAGES}")
    matrix_CC = confusion_matrix(labels_N, predictions_N, num_classes)
    tp_C = np.diag(matrix_CC)
    predicted_C = matrix_CC.sum(axis=0)
    support_C = matrix_CC.sum(axis=1)
    if average == "micro":
        tp_C, predicted_C, support_C = tp_C.sum(), predicted_C.sum(), support_C.sum()
    precision_C = _divide(tp_C, predicted_C)
    recall_C = _divide(tp_C, support_C)
    f1_C = _divide(2 * tp_C, predicted_C + support_C)
    if average is None:
        return precision_C, recall_C, f1_C
    weights_C = support_C if average == "weighted" else None
    return tuple(float(np.average(x_C, weights=weights_C))
                 for x_C in (precision_C, recall_C, f1_C))


def plot_confusion_matrix(matrix_CC: Any, class_names: Sequence[str], path: str | pathlib.Path,
                          title: str = "confusion matrix") -> pathlib.Path:
    """Writes matrix_CC (rows true, columns predicted) as an annotated heat map PNG, atomically."""
    from dlx.train.outputs import figure, save_figure

    matrix_CC = np.asarray(matrix_CC)
    if matrix_CC.ndim != 2 or matrix_CC.shape[0] != matrix_CC.shape[1] or matrix_CC.size == 0:
        raise DlxError(f"matrix_CC must be a non-empty square matrix, got shape {matrix_CC.shape}")
    if len(class_names) != matrix_CC.shape[0]:
        raise DlxError(f"class_names has {len(class_names)} names but matrix_CC has "
                       f"{matrix_CC.shape[0]} classes; expected one name per class")
    num_classes = matrix_CC.shape[0]
    side = max(4.0, 0.5 * num_classes + 2.0)
    fig, ax = figure(size=(side + 1.0, side))
    try:
        image = ax.imshow(matrix_CC, cmap="Blues")
        fig.colorbar(image, ax=ax)
        ax.set(xticks=range(num_classes), yticks=range(num_classes), xlabel="predicted",
               ylabel="true", title=title)
        ax.set_xticklabels(class_names, rotation=45, ha="right")
        ax.set_yticklabels(class_names)
        if num_classes <= 30:
            integral = np.issubdtype(matrix_CC.dtype, np.integer)
            middle = (matrix_CC.max() + matrix_CC.min()) / 2
            for i in range(num_classes):
                for j in range(num_classes):
                    value = matrix_CC[i, j]
                    ax.text(j, i, f"{value:d}" if integral else f"{value:.2f}", ha="center",
                            va="center", fontsize=8, color="white" if value > middle else "black")
    except BaseException:
        import matplotlib.pyplot as plt
        plt.close(fig)
        raise
    path = pathlib.Path(path)
    save_figure(fig, path)
    return path


# --- Ranking -------------------------------------------------------------------------------------

def _threshold_counts(labels_N: np.ndarray, scores_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tp_K, fp_K): positives and negatives scoring >= each of the K distinct scores, highest
    threshold first (a tie block enters the counts all at once)."""
    order_N = np.argsort(-scores_N, kind="stable")
    sorted_N = scores_N[order_N]
    last_K = np.r_[np.flatnonzero(np.diff(sorted_N)), len(sorted_N) - 1]  # Each tie block's end.
    tp_K = np.cumsum(labels_N[order_N])[last_K].astype(np.float64)
    fp_K = (last_K + 1) - tp_K
    return tp_K, fp_K


def roc_auc(labels_N: Any, scores_N: Any) -> float:
    """Scalar: the area under the ROC curve (true- against false-positive rate).

    The curve runs through (0, 0) and (fp_k / #neg, tp_k / #pos) for each distinct threshold k
    (highest first); the area is the trapezoid sum, sum_k (x_k - x_{k-1}) (y_k + y_{k-1}) / 2,
    which equals P(score of a random positive > that of a random negative) + P(tie) / 2.
    """
    labels_N, scores_N = _binary(labels_N, scores_N)
    if labels_N.min() == labels_N.max():
        raise DlxError(f"labels_N holds only class {int(labels_N[0])}; ROC-AUC needs both "
                       "positive (1) and negative (0) examples")
    tp_K, fp_K = _threshold_counts(labels_N, scores_N)
    tpr_K = np.r_[0.0, tp_K / tp_K[-1]]
    fpr_K = np.r_[0.0, fp_K / fp_K[-1]]
    return float(np.sum(np.diff(fpr_K) * (tpr_K[1:] + tpr_K[:-1]) / 2))


def average_precision(labels_N: Any, scores_N: Any) -> float:
    """Scalar: the area under the precision-recall curve as a step-wise sum (no interpolation).

    AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds k (highest first), R_0 = 0, where
    P_k = tp_k / (tp_k + fp_k) and R_k = tp_k / #pos count the examples scoring >= threshold k.
    """
    labels_N, scores_N = _binary(labels_N, scores_N)
    if not labels_N.any():
        raise DlxError("labels_N holds no positive (1) example; average precision needs one")
    tp_K, fp_K = _threshold_counts(labels_N, scores_N)
    precision_K = tp_K / (tp_K + fp_K)
    recall_K = np.r_[0.0, tp_K / tp_K[-1]]
    return float(np.sum(np.diff(recall_K) * precision_K))


pr_auc = average_precision


def _one_vs_rest(metric, labels_N: Any, scores_NC: Any) -> float:
    """The unweighted mean over classes c of metric(labels_N == c, scores_NC[:, c])."""
    labels_N = _integers("labels_N", labels_N)
    scores_NC = np.asarray(scores_NC)
    if scores_NC.ndim != 2 or scores_NC.shape[1] < 2:
        raise DlxError(f"scores_NC must be 2-D with >= 2 class columns, got shape "
                       f"{scores_NC.shape}")
    _same_length("labels_N", labels_N, "scores_NC", scores_NC)
    num_classes = scores_NC.shape[1]
    _classes("labels_N", labels_N, num_classes)
    missing = np.setdiff1d(np.arange(num_classes), labels_N)
    if missing.size:
        raise DlxError(f"class {int(missing[0])} never occurs in labels_N; one-vs-rest needs "
                       f"every one of the {num_classes} classes")
    return float(np.mean([metric((labels_N == c).astype(np.int64), scores_NC[:, c])
                          for c in range(num_classes)]))


def roc_auc_ovr(labels_N: Any, scores_NC: Any) -> float:
    """Scalar: one-vs-rest macro ROC-AUC, the mean over classes c of roc_auc(labels == c, s_c)."""
    return _one_vs_rest(roc_auc, labels_N, scores_NC)


def average_precision_ovr(labels_N: Any, scores_NC: Any) -> float:
    """Scalar: one-vs-rest macro AP, the mean over classes c of average_precision(labels == c)."""
    return _one_vs_rest(average_precision, labels_N, scores_NC)


# --- Language modelling --------------------------------------------------------------------------

def perplexity(mean_nll: float) -> float:
    """Scalar: e^mean_nll, the perplexity of a mean negative log-likelihood in nats per token."""
    mean_nll = float(np.asarray(mean_nll))
    if math.isnan(mean_nll) or mean_nll < 0:
        raise DlxError(f"mean_nll is {mean_nll}; expected a mean negative log-likelihood >= 0")
    return math.exp(mean_nll) if mean_nll < 709.0 else math.inf


def perplexity_from_log_probs(log_probs_X: Any, where_X: Any = None) -> float:
    """Scalar: exp(-mean of log_probs_X), the natural-log probabilities each real token got
    (any shape X; `where_X` marks the real tokens, all of them if None)."""
    log_probs_X = np.asarray(log_probs_X, np.float64)
    where_X = (np.ones(log_probs_X.shape, bool) if where_X is None
               else np.asarray(where_X).astype(bool))
    if where_X.shape != log_probs_X.shape:
        raise DlxError(f"where_X has shape {where_X.shape} but log_probs_X has "
                       f"{log_probs_X.shape}; expected the same shape")
    real = log_probs_X[where_X]
    if real.size == 0:
        raise DlxError("log_probs_X has no real token; expected at least one")
    if np.isnan(real).any() or (real > 0).any():
        raise DlxError("log_probs_X holds NaN or a value > 0; expected log-probabilities <= 0")
    return perplexity(-real.mean())


# --- Generation ----------------------------------------------------------------------------------

References = Sequence[str] | Sequence[Sequence[str]]


def _texts(hypotheses: Sequence[str],
           references: References) -> tuple[list[str], list[list[str]]]:
    """Checked hypotheses and, for each, its list of reference strings."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise DlxError("hypotheses and references must be sequences of strings, got a bare str")
    hypotheses, references = list(hypotheses), list(references)
    if not hypotheses:
        raise DlxError("hypotheses is empty; expected at least one sentence")
    if len(hypotheses) != len(references):
        raise DlxError(f"hypotheses has {len(hypotheses)} sentences but references has "
                       f"{len(references)}; expected one entry (a str or a list) per hypothesis")
    bad = next((h for h in hypotheses if not isinstance(h, str)), None)
    if bad is not None:
        raise DlxError(f"hypotheses holds a {type(bad).__name__}; expected strings")
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    for i, rs in enumerate(refs):
        if not rs or not all(isinstance(r, str) for r in rs):
            raise DlxError(f"references[{i}] must be a string or a non-empty list of strings")
    return hypotheses, refs


def _ngrams(tokens: Sequence[str], n: int) -> collections.Counter:
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _closest_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length nearest the hypothesis length; the shorter one on a tie."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def bleu(hypotheses: Sequence[str], references: References,
         lowercase: bool = False) -> float:
    """Scalar in [0, 100]: corpus BLEU, as sacrebleu's default `corpus_bleu` (13a tokens, 'exp'
    smoothing). references[i] is the reference (or a list of references) for hypotheses[i].

    Per order n <= 4, over the corpus: p_n = sum_i matched_n / sum_i total_n, where a hypothesis
    n-gram matches at most as often as it occurs in any one reference (clipping). BP =
    exp(1 - r/c) if c < r else 1, with c the hypothesis length and r the reference length
    nearest each hypothesis (shorter on ties), both summed. BLEU = 100 BP exp(mean_n log p_n);
    an order with no match uses p_n = 1 / (2^k total_n), k counting such orders so far; 0 if no
    n-gram of any order matches, or if the corpus has no n-gram of some order n.
    """
    hypotheses, refs = _texts(hypotheses, references)
    tokenizer = _require("sacrebleu.tokenizers.tokenizer_13a", "sacrebleu").Tokenizer13a()

    def tokens(text: str) -> list[str]:
        return tokenizer((text.lower() if lowercase else text).rstrip()).split()

    hyp_len = ref_len = 0
    matched_n = [0] * BLEU_MAX_ORDER
    total_n = [0] * BLEU_MAX_ORDER
    for hypothesis, rs in zip(hypotheses, refs):
        hyp = tokens(hypothesis)
        ref_tokens = [tokens(r) for r in rs]
        hyp_len += len(hyp)
        ref_len += _closest_length(len(hyp), [len(r) for r in ref_tokens])
        for n in range(1, BLEU_MAX_ORDER + 1):
            max_ref = collections.Counter()
            for r in ref_tokens:
                max_ref |= _ngrams(r, n)  # Elementwise max of the counts.
            for ngram, count in _ngrams(hyp, n).items():
                total_n[n - 1] += count
                matched_n[n - 1] += min(count, max_ref[ngram])
    if not any(matched_n) or not all(total_n):
        return 0.0
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    log_precisions, unmatched = [], 1
    for matched, total in zip(matched_n, total_n):
        if matched == 0:
            unmatched *= 2
            log_precisions.append(math.log(100.0 / (unmatched * total)))
        else:
            log_precisions.append(math.log(100.0 * matched / total))
    return brevity * math.exp(sum(log_precisions) / BLEU_MAX_ORDER)


def _streams(refs: list[list[str]]) -> list[list[str | None]]:
    """Per-hypothesis reference lists -> sacrebleu's reference streams (None pads a short list)."""
    width = max(len(rs) for rs in refs)
    return [[rs[k] if k < len(rs) else None for rs in refs] for k in range(width)]


def chrf(hypotheses: Sequence[str], references: References,
         word_order: int = 0) -> float:
    """Scalar in [0, 100]: sacrebleu's corpus chrF (character n-grams up to 6, beta = 2); chrF++
    with word_order=2. references[i] is the reference (or a list of them) for hypotheses[i]."""
    hypotheses, refs = _texts(hypotheses, references)
    sacrebleu = _require("sacrebleu", "sacrebleu")
    return float(sacrebleu.CHRF(word_order=word_order).corpus_score(hypotheses,
                                                                    _streams(refs)).score)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """The length of a longest common subsequence of `a` and `b` (dynamic programming)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _rouge_pair(kind: str, ref: list[str], hyp: list[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of one hypothesis against one reference."""
    if kind == "rougeL":
        if not ref or not hyp:
            return 0.0, 0.0, 0.0
        lcs = _lcs_length(ref, hyp)
        precision, recall = lcs / len(hyp), lcs / len(ref)
    else:
        n = int(kind[5:])
        ref_counts, hyp_counts = _ngrams(ref, n), _ngrams(hyp, n)
        overlap = sum((ref_counts & hyp_counts).values())
        precision = overlap / max(sum(hyp_counts.values()), 1)
        recall = overlap / max(sum(ref_counts.values()), 1)
    return precision, recall, _f1(precision, recall)


def rouge(hypotheses: Sequence[str], references: References,
          types: Sequence[str] = ("rouge1", "rouge2", "rougeL"),
          use_stemmer: bool = False) -> dict[str, dict[str, float]]:
    """{type: {"precision", "recall", "f1"}} in [0, 1], each the mean over hypotheses, as
    rouge-score's `RougeScorer` (its tokens: lowercase alphanumeric runs, optionally stemmed).

    rougeN: overlap = sum over n-grams of min(count in hypothesis, count in reference);
    precision = overlap / #hypothesis n-grams, recall = overlap / #reference n-grams.
    rougeL: the same with overlap = the length of a longest common subsequence of the tokens.
    F1 = 2PR / (P + R). With several references, each type takes the one of highest F1.
    """
    hypotheses, refs = _texts(hypotheses, references)
    types = tuple(types)
    bad = [t for t in types if not (t == "rougeL" or re.fullmatch(r"rouge[1-9]", t))]
    if bad or not types:
        raise DlxError(f"ROUGE types {bad or types} are unknown; expected rouge1..rouge9 or rougeL")
    tokenizer = _require("rouge_score.tokenizers", "rouge-score").DefaultTokenizer(use_stemmer)
    sums = {t: np.zeros(3) for t in types}
    for hypothesis, rs in zip(hypotheses, refs):
        hyp = tokenizer.tokenize(hypothesis)
        ref_tokens = [tokenizer.tokenize(r) for r in rs]
        for t in types:
            scores = [_rouge_pair(t, ref, hyp) for ref in ref_tokens]
            sums[t] += max(scores, key=lambda s: s[2])  # First of the highest F1, as score_multi.
    return {t: dict(zip(("precision", "recall", "f1"), (s / len(hypotheses)).tolist()))
            for t, s in sums.items()}

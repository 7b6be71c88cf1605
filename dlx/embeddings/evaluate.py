"""Intrinsic evaluation of word vectors: similarity judgements and the Google analogy questions.

Both follow gensim's `KeyedVectors.evaluate_word_pairs` and `evaluate_word_analogies`, so their
numbers can be compared with gensim's: only the first `restrict_vocab` rows count as the
vocabulary (the most frequent words when rows are sorted by frequency), words match without
regard to case (through upper-casing; the first row of each case-folded word wins), and
questions or pairs with a word outside that vocabulary are skipped and counted in `oov_ratio`
(a fraction here; gensim reports a percentage). Analogies are answered in batches with matrix
products instead of one nearest-neighbour search per question.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import scipy.stats

from dlx.data import text
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError

WORDSIM353 = "wordsim353.tsv"
SIMLEX999 = "simlex999.txt"
GOOGLE_ANALOGIES = "questions-words.txt"
# Rows of scores per analogy batch times vocabulary size, about 64 MiB of float32.
_BATCH_SCORES = 1 << 24


def gensim_test_file(name: str) -> pathlib.Path:
    """Path of one of the evaluation sets that ship in gensim's `test_data/`."""
    return text.gensim_file(name, f"{name} ships with gensim, which is not installed; install it "
                                  f"with pip install 'dlx[text]' or pass the path of your own copy")


def _vocabulary(kv: KeyedVectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    """Word (upper-cased if `case_insensitive`) -> its first row among the first rows."""
    if restrict_vocab < 1:
        raise DlxError(f"restrict_vocab={restrict_vocab} must be a positive number of words")
    vocabulary: dict[str, int] = {}
    for row, word in enumerate(kv.words[:restrict_vocab]):
        vocabulary.setdefault(word.upper() if case_insensitive else word, row)
    return vocabulary


def _read_lines(path: str | os.PathLike, what: str) -> list[str]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise DlxError(f"{path}: no such file; expected {what}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DlxError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def word_similarity(kv: KeyedVectors, pairs_path: str | os.PathLike,
                    restrict_vocab: int = 300000, case_insensitive: bool = True,
                    delimiter: str = "\t") -> dict:
    """Spearman and Pearson correlation of cosine similarities with human scores in a file of
    `word1<TAB>word2<TAB>score` lines ('#' starts a comment; malformed lines are skipped)."""
    vocabulary = _vocabulary(kv, restrict_vocab, case_insensitive)
    gold, model, oov = [], [], 0
    for line in _read_lines(pairs_path, "word pairs with a similarity score per line"):
        if line.startswith("#"):
            continue
        fields = line.split(delimiter)
        if len(fields) != 3:
            continue
        try:
            score = float(fields[2])
        except ValueError:
            continue
        word1, word2 = (w.upper() for w in fields[:2]) if case_insensitive else fields[:2]
        if word1 not in vocabulary or word2 not in vocabulary:
            oov += 1
            continue
        gold.append(score)
        model.append(float(kv.unit_VD[vocabulary[word1]] @ kv.unit_VD[vocabulary[word2]]))
    if not gold:
        raise DlxError(f"{pairs_path}: no scored pair has both words among the first "
                       f"{restrict_vocab} words ({oov} pairs out of vocabulary); expected "
                       f"'word1{delimiter}word2{delimiter}score' lines")
    return {"spearman": float(scipy.stats.spearmanr(gold, model).statistic),
            "pearson": float(scipy.stats.pearsonr(gold, model).statistic),
            "oov_ratio": oov / (len(gold) + oov), "pairs": len(gold)}


def _read_questions(path: str | os.PathLike, case_insensitive: bool) -> list[tuple[str, list]]:
    """(section name, [(a, b, c, expected) ...]) in file order; lines without 4 words skipped."""
    sections: list[tuple[str, list]] = []
    for line_no, line in enumerate(_read_lines(path, "analogy questions"), start=1):
        if line.startswith(": "):
            sections.append((line[2:].strip(), []))
            continue
        if not sections:
            raise DlxError(f"{path}: line {line_no} comes before any ': SECTION' header; "
                           f"expected the layout of questions-words.txt")
        words = line.split()
        if len(words) == 4:
            sections[-1][1].append([w.upper() for w in words] if case_insensitive else words)
    return sections


def _answers(unit_ND: np.ndarray, canonical_N: np.ndarray, rows_Q4: np.ndarray) -> np.ndarray:
    """(Q,) bool: is the best 3CosAdd candidate for b - a + c, bar every row of the question
    words, the expected word? `rows_Q4` holds canonical rows of a, b, c and the expected word."""
    correct_Q = np.zeros(len(rows_Q4), dtype=bool)
    batch = max(1, _BATCH_SCORES // max(1, unit_ND.shape[0]))
    for start in range(0, len(rows_Q4), batch):
        a_Q, b_Q, c_Q, expected_Q = rows_Q4[start:start + batch].T
        query_QD = unit_ND[b_Q] + unit_ND[c_Q] - unit_ND[a_Q]
        scores_QN = query_QD @ unit_ND.T
        for rows_Q in (a_Q, b_Q, c_Q):
            scores_QN[canonical_N[None, :] == rows_Q[:, None]] = -np.inf
        correct_Q[start:start + batch] = canonical_N[scores_QN.argmax(axis=1)] == expected_Q
    return correct_Q


def analogies(kv: KeyedVectors, path: str | os.PathLike | None = None,
              restrict_vocab: int = 300000, case_insensitive: bool = True) -> dict:
    """Accuracy per section and in total on analogy questions "a b c d" (a is to b as c is to
    d; default: gensim's copy of the Google set), answering by 3CosAdd over the first rows."""
    path = gensim_test_file(GOOGLE_ANALOGIES) if path is None else path
    vocabulary = _vocabulary(kv, restrict_vocab, case_insensitive)
    sections = _read_questions(path, case_insensitive)
    questions = sum(len(items) for _, items in sections)
    if not questions:
        raise DlxError(f"{path}: no analogy questions; expected ': SECTION' headers followed by "
                       f"lines of four words")
    limit = min(restrict_vocab, len(kv))
    # Row -> the row its case-folded word maps to, so all case variants are one candidate.
    canonical_N = np.array([vocabulary[w.upper() if case_insensitive else w]
                            for w in kv.words[:limit]], dtype=np.int64)
    rows, names = [], []
    for name, items in sections:
        for words in items:
            if all(word in vocabulary for word in words):
                rows.append([vocabulary[word] for word in words])
                names.append(name)
    correct_Q = (_answers(kv.unit_VD[:limit], canonical_N, np.array(rows, dtype=np.int64))
                 if rows else np.zeros(0, dtype=bool))
    per_section: dict[str, dict] = {}
    for name, _ in sections:
        per_section.setdefault(name, {"correct": 0, "total": 0})
    for name, correct in zip(names, correct_Q.tolist()):
        per_section[name]["correct"] += correct
        per_section[name]["total"] += 1
    for counts in per_section.values():
        counts["accuracy"] = counts["correct"] / counts["total"] if counts["total"] else 0.0
    total_correct = int(correct_Q.sum())
    return {"sections": per_section, "correct": total_correct, "total": len(rows),
            "accuracy": total_correct / len(rows) if rows else 0.0,
            "oov_ratio": (questions - len(rows)) / questions, "questions": questions}


def evaluate_all(kv: KeyedVectors, restrict_vocab: int = 300000,
                 wordsim353: str | os.PathLike | None = None,
                 simlex999: str | os.PathLike | None = None,
                 google_analogies: str | os.PathLike | None = None) -> dict:
    """WordSim-353 and SimLex-999 correlations and Google analogy accuracy; each file defaults to
    gensim's copy."""
    return {"wordsim353": word_similarity(kv, wordsim353 or gensim_test_file(WORDSIM353),
                                          restrict_vocab),
            "simlex999": word_similarity(kv, simlex999 or gensim_test_file(SIMLEX999),
                                         restrict_vocab),
            "analogies": analogies(kv, google_analogies or gensim_test_file(GOOGLE_ANALOGIES),
                                   restrict_vocab)}


def headline(scores: dict) -> dict:
    """The figures a results table shows, from `evaluate_all`'s scores: WordSim-353 and
    SimLex-999 Spearman, analogy accuracy, and each set's OOV ratio."""
    return {"wordsim353": scores["wordsim353"]["spearman"],
            "simlex999": scores["simlex999"]["spearman"],
            "analogy": scores["analogies"]["accuracy"],
            "wordsim353_oov": scores["wordsim353"]["oov_ratio"],
            "simlex999_oov": scores["simlex999"]["oov_ratio"],
            "analogy_oov": scores["analogies"]["oov_ratio"]}

"""Word-pair correlations and analogy accuracy: golden values, and equal to gensim's evaluation."""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest

from dlx.embeddings.evaluate import analogies, evaluate_all, word_similarity
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError

PAIRS = """# a comment line
cat\tdog\t9
CAT\tTIGER\t7
dog\tcar\t3
cat\tcar\t1
cat\tunicorn\t5
cat\tdog
"""


@pytest.fixture
def pets() -> KeyedVectors:
    """Cosines: cat-dog 0.8, cat-Tiger 0.6, dog-car 0.6, cat-car 0."""
    return KeyedVectors(["cat", "dog", "car", "Tiger"],
                        np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]]))


def test_word_similarity_golden(pets: KeyedVectors, tmp_path: pathlib.Path) -> None:
    """Gold 9, 7, 3, 1 against model 0.8, 0.6, 0.6, 0: the numbers worked out by hand."""
    path = tmp_path / "pairs.tsv"
    path.write_text(PAIRS)
    result = word_similarity(pets, path)
    assert result["pairs"] == 4 and result["oov_ratio"] == pytest.approx(1 / 5)
    # Ranks (4, 3, 2, 1) against (4, 2.5, 2.5, 1).
    assert result["spearman"] == pytest.approx(3 / math.sqrt(10), rel=1e-12)
    # Deviations (4, 2, -2, -4) and (0.3, 0.1, 0.1, -0.5).
    assert result["pearson"] == pytest.approx(3.2 / math.sqrt(40 * 0.36), rel=1e-6)
    case_sensitive = word_similarity(pets, path, case_insensitive=False)
    assert case_sensitive["pairs"] == 3 and case_sensitive["oov_ratio"] == pytest.approx(2 / 5)
    with pytest.raises(DlxError, match="no scored pair has both words among the first 1 words"):
        word_similarity(pets, path, restrict_vocab=1)


QUESTIONS = """: capitals
athens greece paris france
ATHENS GREECE PARIS FRANCE
athens greece rome italy
: verbs
go went see saw
a line of five words
"""


@pytest.fixture
def capitals() -> KeyedVectors:
    """greece - athens + paris is nearest france; greece - athens + rome is not italy."""
    words = ["athens", "greece", "paris", "france", "rome", "go", "went", "see", "italy"]
    vectors_VD = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 1, 1], [-1, 0, 0],
                           [0, 0, -1], [1, 1, -1], [-1, -1, -1], [0, -1, 0]], dtype=np.float32)
    return KeyedVectors(words, vectors_VD)


def test_analogies_golden(capitals: KeyedVectors, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "questions.txt"
    path.write_text(QUESTIONS)
    result = analogies(capitals, path)
    assert result["sections"] == {"capitals": {"correct": 2, "total": 3, "accuracy": 2 / 3},
                                  "verbs": {"correct": 0, "total": 0, "accuracy": 0.0}}
    assert (result["correct"], result["total"], result["questions"]) == (2, 3, 4)
    assert result["accuracy"] == pytest.approx(2 / 3) and result["oov_ratio"] == 0.25
    # Leaving out the last row (italy) turns the failed question out of vocabulary.
    restricted = analogies(capitals, path, restrict_vocab=len(capitals) - 1)
    assert restricted["sections"]["capitals"] == {"correct": 2, "total": 2, "accuracy": 1.0}
    assert restricted["oov_ratio"] == 0.5
    assert analogies(capitals, path, case_insensitive=False)["sections"]["capitals"]["total"] == 2


def test_analogies_need_a_section_header(capitals: KeyedVectors, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "questions.txt"
    path.write_text("athens greece paris france\n")
    with pytest.raises(DlxError, match="line 1 comes before any ': SECTION' header"):
        analogies(capitals, path)


@pytest.fixture(scope="module")
def gensim_files() -> dict[str, str]:
    utils = pytest.importorskip("gensim.test.utils")
    return {name: utils.datapath(name)
            for name in ("questions-words.txt", "wordsim353.tsv", "simlex999.txt")}


@pytest.fixture(scope="module")
def benchmark_vectors(gensim_files: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """Random vectors over most evaluation words, with case variants and filler words; in the
    capital and plural sections, b - a is one shared offset plus noise, so many analogies hold."""
    rng = np.random.default_rng(0)
    lines = pathlib.Path(gensim_files["questions-words.txt"]).read_text().splitlines()
    words = [w for line in lines if not line.startswith(":") for w in line.split()]
    for name in ("wordsim353.tsv", "simlex999.txt"):
        for line in pathlib.Path(gensim_files[name]).read_text().splitlines():
            if not line.startswith("#"):
                words += line.split("\t")[:2]
    words = list(dict.fromkeys(words))
    rng.shuffle(words)
    words = words[:int(0.9 * len(words))]
    words += [w.lower() for w in words[:300] if w.lower() not in set(words)]
    words += [f"filler{i}" for i in range(300)]
    index = {word: row for row, word in enumerate(words)}
    vectors_VD = rng.normal(size=(len(words), 32)).astype(np.float32)
    offsets = {}
    section = ""
    for line in lines:
        if line.startswith(":"):
            section = line
            offsets[section] = rng.normal(size=32).astype(np.float32) * 3
            continue
        a, b, _, _ = line.split()
        if ("capital" in section or "plural" in section) and a in index and b in index:
            vectors_VD[index[b]] = (vectors_VD[index[a]] + offsets[section]
                                    + 0.1 * rng.normal(size=32).astype(np.float32))
    return words, vectors_VD


@pytest.fixture(scope="module")
def both_kvs(benchmark_vectors: tuple[list[str], np.ndarray]) -> tuple[KeyedVectors, object]:
    from gensim.models import KeyedVectors as GensimKeyedVectors
    words, vectors_VD = benchmark_vectors
    theirs = GensimKeyedVectors(vectors_VD.shape[1])
    theirs.add_vectors(words, vectors_VD)
    return KeyedVectors(words, vectors_VD), theirs


@pytest.mark.parametrize("restrict_vocab, case_insensitive",
                         [(300000, True), (1500, True), (300000, False)])
def test_analogies_equal_gensim(both_kvs: tuple, gensim_files: dict[str, str],
                                restrict_vocab: int, case_insensitive: bool) -> None:
    ours, theirs = both_kvs
    path = gensim_files["questions-words.txt"]
    result = analogies(ours, path, restrict_vocab, case_insensitive)
    score, sections = theirs.evaluate_word_analogies(path, restrict_vocab, case_insensitive)
    total = sections.pop()
    assert result["accuracy"] == pytest.approx(score, abs=1e-12)
    assert 0.1 < result["accuracy"] < 0.9, "the constructed analogies should hold only partly"
    assert (result["correct"], result["total"]) == (len(total["correct"]),
                                                    len(total["correct"] + total["incorrect"]))
    assert list(result["sections"]) == [s["section"] for s in sections]
    for section in sections:
        counts = result["sections"][section["section"]]
        assert (counts["correct"], counts["total"]) == (
            len(section["correct"]), len(section["correct"]) + len(section["incorrect"]))
    expected_oov = result["questions"] - result["total"]
    assert result["oov_ratio"] == pytest.approx(expected_oov / result["questions"])
    assert result["oov_ratio"] > 0.05


@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
@pytest.mark.parametrize("restrict_vocab", [300000, 1500])
def test_word_similarity_equals_gensim(both_kvs: tuple, gensim_files: dict[str, str], name: str,
                                       restrict_vocab: int) -> None:
    ours, theirs = both_kvs
    result = word_similarity(ours, gensim_files[name], restrict_vocab)
    pearson, spearman, oov_percent = theirs.evaluate_word_pairs(gensim_files[name],
                                                               restrict_vocab=restrict_vocab)
    assert result["spearman"] == pytest.approx(spearman.statistic, abs=1e-9)
    assert result["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    assert result["oov_ratio"] * 100 == pytest.approx(oov_percent, abs=1e-9)
    assert 0 < result["oov_ratio"] < 1 and result["pairs"] > 10


def test_evaluate_all_uses_gensims_files(both_kvs: tuple, gensim_files: dict[str, str]) -> None:
    ours, _ = both_kvs
    result = evaluate_all(ours, restrict_vocab=1500)
    assert result["wordsim353"] == word_similarity(ours, gensim_files["wordsim353.tsv"], 1500)
    assert result["simlex999"] == word_similarity(ours, gensim_files["simlex999.txt"], 1500)
    assert result["analogies"] == analogies(ours, gensim_files["questions-words.txt"], 1500)


def test_evaluate_all_without_gensim(pets: KeyedVectors, tmp_path: pathlib.Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gensim.test.utils", None)  # makes the import fail
    with pytest.raises(DlxError, match="wordsim353.tsv ships with gensim, which is not installed"):
        evaluate_all(pets)
    pairs, questions = tmp_path / "pairs.tsv", tmp_path / "questions.txt"
    pairs.write_text(PAIRS)
    questions.write_text(": pets\ncat dog car Tiger\n")
    result = evaluate_all(pets, wordsim353=pairs, simlex999=pairs, google_analogies=questions)
    assert result["simlex999"]["pairs"] == 4 and result["analogies"]["total"] == 1

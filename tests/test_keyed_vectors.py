"""KeyedVectors: queries equal gensim's, word2vec files go both ways, bad files fail clearly."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from dlx.embeddings.vectors import KeyedVectors, OOVError
from dlx.errors import DlxError

WORDS = [f"w{i}" for i in range(300)] + ["naïve", "Paris", "paris"]
DIM = 16


@pytest.fixture(scope="module")
def vectors_VD() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(len(WORDS), DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def kv(vectors_VD: np.ndarray) -> KeyedVectors:
    return KeyedVectors(WORDS, vectors_VD)


@pytest.fixture(scope="module")
def gensim_kv(vectors_VD: np.ndarray):
    gensim_models = pytest.importorskip("gensim.models")
    model = gensim_models.KeyedVectors(DIM)
    model.add_vectors(WORDS, vectors_VD)
    return model


def assert_same_ranking(ours: list, theirs: list) -> None:
    assert [word for word, _ in ours] == [word for word, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5, atol=1e-6)


QUERIES = [dict(positive=["w1"]), dict(positive=["w1", "w2"], negative=["w3"]),
           dict(positive=["Paris", "w7"], negative=["paris"], topn=25),
           dict(positive=["w4"], negative=["w5", "w6"], topn=3, restrict_vocab=100),
           dict(positive="naïve", topn=len(WORDS) + 5)]


@pytest.mark.parametrize("query", QUERIES)
def test_most_similar_equals_gensim(kv: KeyedVectors, gensim_kv, query: dict) -> None:
    assert_same_ranking(kv.most_similar(**query), gensim_kv.most_similar(**query))


@pytest.mark.parametrize("query", [q for q in QUERIES if "restrict_vocab" not in q])
def test_most_similar_cosmul_equals_gensim(kv: KeyedVectors, gensim_kv, query: dict) -> None:
    assert_same_ranking(kv.most_similar_cosmul(**query), gensim_kv.most_similar_cosmul(**query))


def test_a_raw_vector_query_equals_gensim(kv: KeyedVectors, gensim_kv,
                                          vectors_VD: np.ndarray) -> None:
    query_D = vectors_VD[10] * 3.0 + 0.1
    assert_same_ranking(kv.most_similar(positive=[query_D], topn=7),
                        gensim_kv.most_similar(positive=[query_D], topn=7))
    assert_same_ranking(kv.nearest(query_D, topn=7),
                        gensim_kv.similar_by_vector(query_D, topn=7))


def test_similarity_and_doesnt_match_equal_gensim(kv: KeyedVectors, gensim_kv) -> None:
    for pair in [("w1", "w2"), ("Paris", "paris"), ("naïve", "w0"), ("w3", "w3")]:
        assert kv.similarity(*pair) == pytest.approx(float(gensim_kv.similarity(*pair)), abs=1e-6)
    for group in [["w1", "w2", "w3", "w4"], [f"w{i}" for i in range(0, 60, 7)], ["w8", "w9"]]:
        assert kv.doesnt_match(group) == gensim_kv.doesnt_match(group)


def test_analogy_finds_the_offset() -> None:
    """king - man + woman = queen holds by construction, with both 3CosAdd and 3CosMul."""
    rng = np.random.default_rng(1)
    base_VD = rng.normal(size=(20, 8)).astype(np.float32)
    gender_D = rng.normal(size=8).astype(np.float32) * 2
    vectors_VD = np.concatenate([base_VD, base_VD[:2] + gender_D])
    kv = KeyedVectors(["king", "man"] + [f"n{i}" for i in range(2, 20)] + ["queen", "woman"],
                      vectors_VD)
    for method in ("add", "mul"):
        (answer, _), = kv.analogy("man", "woman", "king", method=method)
        assert answer == "queen"
    with pytest.raises(DlxError, match="method='sub' is not an analogy method"):
        kv.analogy("man", "woman", "king", method="sub")


def test_oov_is_a_key_error_naming_the_word(kv: KeyedVectors) -> None:
    assert "w1" in kv and "unicorn" not in kv and len(kv) == len(WORDS)
    with pytest.raises(KeyError) as caught:
        kv["unicorn"]
    assert isinstance(caught.value, OOVError) and isinstance(caught.value, DlxError)
    assert str(caught.value) == f"'unicorn' is not in the vocabulary ({len(WORDS)} words); " \
                                f"expected a known word"
    for call in (lambda: kv.similarity("w1", "unicorn"), lambda: kv.most_similar("unicorn"),
                 lambda: kv.doesnt_match(["w1", "unicorn"]), lambda: kv.nearest("unicorn")):
        with pytest.raises(OOVError, match="'unicorn' is not in the vocabulary"):
            call()


def test_nearest_by_cosine_and_by_euclidean_distance() -> None:
    """The far vector along the query's direction wins on cosine; the near one on distance."""
    vectors_VD = np.array([[1.0, 0.0], [10.0, 0.0], [1.0, 0.5], [-1.0, 0.0], [0.0, 3.0]])
    kv = KeyedVectors.from_matrix(vectors_VD, ["img_query", "img_far", "img_near", 7, "img_up"])
    assert kv.words == ["img_query", "img_far", "img_near", "7", "img_up"]
    by_cosine = kv.nearest("img_query", topn=4)
    assert [label for label, _ in by_cosine] == ["img_far", "img_near", "img_up", "7"]
    np.testing.assert_allclose([s for _, s in by_cosine], [1.0, 2 / np.sqrt(5), 0.0, -1.0],
                               rtol=1e-6, atol=1e-7)
    by_distance = kv.nearest("img_query", topn=2, metric="euclidean")
    assert by_distance == [("img_near", pytest.approx(0.5)), ("7", pytest.approx(2.0))]
    assert kv.nearest(np.array([0.0, 2.0]), topn=1, metric="euclidean")[0][0] == "img_up"
    with pytest.raises(DlxError, match="metric='manhattan' is not known"):
        kv.nearest("img_query", metric="manhattan")


def test_constructor_rejects_duplicates_and_bad_shapes() -> None:
    with pytest.raises(DlxError, match="word 'a' appears twice \\(rows 0 and 2\\)"):
        KeyedVectors(["a", "b", "a"], np.zeros((3, 2)))
    with pytest.raises(DlxError, match=r"vectors have shape \(2, 2\) for 3 words"):
        KeyedVectors(["a", "b", "c"], np.zeros((2, 2)))


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_go_both_ways_with_gensim(kv: KeyedVectors, gensim_kv,
                                                 tmp_path: pathlib.Path, binary: bool) -> None:
    gensim_models = pytest.importorskip("gensim.models")
    ours, theirs = tmp_path / "ours.w2v", tmp_path / "theirs.w2v"
    kv.save_word2vec_format(ours, binary=binary)
    gensim_kv.save_word2vec_format(str(theirs), binary=binary)
    assert ours.read_bytes() == theirs.read_bytes()
    read_by_gensim = gensim_models.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    read_by_us = KeyedVectors.load_word2vec_format(theirs, binary=binary)
    assert read_by_gensim.index_to_key == WORDS and read_by_us.words == WORDS
    np.testing.assert_array_equal(read_by_gensim.vectors, kv.vectors_VD)
    np.testing.assert_array_equal(read_by_us.vectors_VD, kv.vectors_VD)
    assert_same_ranking(read_by_us.most_similar("Paris", topn=20),
                        read_by_gensim.most_similar("Paris", topn=20))
    assert KeyedVectors.load_word2vec_format(ours, binary, limit=5).words == WORDS[:5]


def test_reads_the_c_tool_binary_layout(tmp_path: pathlib.Path) -> None:
    """word2vec.c ends each binary record with a newline; gensim leaves it out: both read."""
    vectors_VD = np.arange(6, dtype="<f4").reshape(3, 2)
    path = tmp_path / "c.bin"
    path.write_bytes(b"3 2\n" + b"".join(w + b" " + v.tobytes() + b"\n"
                                         for w, v in zip([b"a", b"b", b"c"], vectors_VD)))
    kv = KeyedVectors.load_word2vec_format(path, binary=True)
    assert kv.words == ["a", "b", "c"]
    np.testing.assert_array_equal(kv.vectors_VD, vectors_VD)


def binary_record(word: bytes, values: list[float]) -> bytes:
    return word + b" " + np.array(values, dtype="<f4").tobytes()


MALFORMED_TEXT = {
    "one-field header": (b"3\nx 1 2\n", "line 1 is b'3'; expected the header"),
    "words in header": (b"two 2\nx 1 2\n", "line 1 is b'two 2'; expected the header"),
    "short line": (b"2 3\nx 1 2 3\ny 1 2\n", "line 3 has 2 values; expected a word and 3"),
    "long line": (b"1 2\nx 1 2 3\n", "line 2 has 3 values; expected a word and 2"),
    "not a number": (b"2 2\nx 1 2\ny 1 two\n", "line 3 has the value 'two'; expected 2 numbers"),
    "too few lines": (b"3 2\nx 1 2\ny 3 4\n", "the file ends at line 3; the header promises 3"),
    "duplicate": (b"3 1\nx 1\ny 2\nx 3\n", "line 4 repeats the word 'x' of line 2"),
    "extra lines": (b"1 1\nx 1\ny 2\n", "there is more \\(line 3\\) after the 1 vectors"),
    "not utf-8": (b"1 1\n\xff 1\n", "line 2 is not UTF-8"),
}
MALFORMED_BINARY = {
    "truncated vector": (b"2 2\n" + binary_record(b"x", [1, 2]) + b"y " + b"\0" * 5,
                         "the file is truncated at word 1 \\(0-based\\) of 2"),
    "missing word": (b"2 2\n" + binary_record(b"x", [1, 2]), "truncated at word 1"),
    "duplicate": (b"2 1\n" + binary_record(b"x", [1]) + binary_record(b"x", [2]),
                  "word 1 repeats the word 'x' of word 0"),
    "extra bytes": (b"1 1\n" + binary_record(b"x", [1]) + binary_record(b"y", [2]),
                    "there is more \\(6 more bytes\\) after the 1 vectors"),
}


@pytest.mark.parametrize("binary, case", [(False, case) for case in MALFORMED_TEXT]
                         + [(True, case) for case in MALFORMED_BINARY])
def test_malformed_files_name_the_file_and_place(tmp_path: pathlib.Path, binary: bool,
                                                 case: str) -> None:
    content, message = (MALFORMED_BINARY if binary else MALFORMED_TEXT)[case]
    path = tmp_path / "vectors.w2v"
    path.write_bytes(content)
    with pytest.raises(DlxError, match=f"^{re.escape(str(path))}: .*{message}"):
        KeyedVectors.load_word2vec_format(path, binary=binary)


def test_missing_file_and_unstorable_words(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DlxError, match="no such file"):
        KeyedVectors.load_word2vec_format(tmp_path / "absent.vec")
    kv = KeyedVectors(["fine", "two words"], np.zeros((2, 2)))
    with pytest.raises(DlxError, match="word 1 \\('two words'\\) cannot be stored"):
        kv.save_word2vec_format(tmp_path / "out.vec")
    assert list(tmp_path.iterdir()) == [], "a failed save left a file behind"

"""Labelled text sets (shipped with gensim or read from TSV files) and their stratified split."""

import os
import pickle
import zlib

import numpy as np
import pytest
from ml_collections import ConfigDict

from dlx.data import labelled_text
from dlx.errors import DlxError

HEADER_FIELDS = ("Newsgroups:", "Subject:", "From:", "Path:", "Organization:", "Message-ID:",
                 "Lines:", "Xref:", "Archive-name:")
GROUPS = ("alt.atheism", "sci.space")


@pytest.fixture(scope="module")
def newsgroups():
    pytest.importorskip("gensim")
    return labelled_text.examples("newsgroups")


def write_tsv(path, rows):
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    return path


def texts_of(count, label, prefix="text"):
    return [f"{prefix} {label} {i}" for i in range(count)]


def test_pang_lee_polarity_is_200_balanced_distinct_sentences():
    pytest.importorskip("gensim")
    texts, labels, names = labelled_text.examples("pang_lee_polarity")
    assert names == ("neg", "pos") and labels.dtype == np.int32
    assert len(texts) == len(set(texts)) == 200 and np.bincount(labels).tolist() == [100, 100]
    assert all(text and text == text.strip() and "__label__" not in text for text in texts)
    assert texts[0] == "simplistic , silly and tedious ."
    assert any("\u2014" in text for text in texts)  # Windows-1252 dashes decoded, not mangled


def test_newsgroups_is_cleaned_of_headers_quotes_and_signatures(newsgroups):
    texts, labels, names = newsgroups
    assert names == GROUPS and labels.dtype == np.int32
    assert len(texts) == len(set(texts)) == 193 and np.bincount(labels).tolist() == [97, 96]
    assert all(text and " ".join(text.split()) == text for text in texts)
    assert not [text for text in texts if any(field in text for field in HEADER_FIELDS)]
    assert not [text for text in texts if text.startswith(GROUPS) or "writes:" in text]
    # A group's name may appear in prose ("discussed on sci.space"), never as a header value.
    naming = [text for text in texts if any(group in text for group in GROUPS)]
    assert len(naming) == 7
    assert not [text for text in naming
                if any(f"{field} {group}" in text for field in HEADER_FIELDS for group in GROUPS)]


def test_clean_post_removes_what_scikit_learn_removes_and_leftover_headers():
    post = ("Newsgroups: sci.space\nFrom: a@b.edu\nSubject: Re: orbits\n\n"
            "In article <1@b.edu> c@d.edu writes:\n> quoted line\n|also quoted\n"
            "The   first\tparagraph.\n"
            "To: Newsgroups: sci.space\nDate: Sat, 24 Apr 1993\n    Reference: kept, indented\n"
            "\nLast paragraph.\n--\nSignature, Some University\n")
    assert (labelled_text.clean_post(post)
            == "The first paragraph. Reference: kept, indented Last paragraph.")
    assert labelled_text.clean_post("Subject: only headers\n") == ""


def test_unpickler_rebuilds_a_bunch_and_refuses_anything_else(tmp_path, monkeypatch):
    bunch = {"data": ["Newsgroups: sci.space\n\nOrbits are fun.\n", "Path: x\n\n> only a quote\n",
                      "Newsgroups: alt.atheism\n\nGods are not.\n"],
             "target": [1, 1, 0], "target_names": list(GROUPS), "filenames": None}
    path = tmp_path / "bunch"
    monkeypatch.setattr(labelled_text, "gensim_file", lambda name: path)
    path.write_bytes(zlib.compress(pickle.dumps(bunch, protocol=2)))
    texts, labels, names = labelled_text.examples("newsgroups")
    assert texts == ["Orbits are fun.", "Gods are not."] and labels.tolist() == [1, 0]
    assert names == GROUPS

    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    for protocol in (0, 2):
        path.write_bytes(zlib.compress(pickle.dumps({"data": [Exploit()]}, protocol=protocol)))
        with pytest.raises(DlxError, match=r"refusing to unpickle \w+\.system") as error:
            labelled_text.examples("newsgroups")
        assert "\n" not in str(error.value) and not marker.exists()
    for content, message in [(b"not zlib", "is not a zlib-compressed pickle"),
                             (zlib.compress(pickle.dumps([1, 2], protocol=2)), "does not hold")]:
        path.write_bytes(content)
        with pytest.raises(DlxError, match=message):
            labelled_text.examples("newsgroups")


def test_split_is_stratified_disjoint_and_deterministic():
    texts = texts_of(40, "a") + texts_of(20, "b") + texts_of(3, "c")
    labels = np.array([0] * 40 + [1] * 20 + [2] * 3)
    names = ("a", "b", "c")
    splits = labelled_text.split(texts, labels, names, 0.25)
    assert np.bincount(splits.test_labels).tolist() == [10, 5, 1]
    assert np.bincount(splits.train_labels).tolist() == [30, 15, 2]
    assert splits.train_labels.dtype == splits.test_labels.dtype == np.int32
    assert not set(splits.train_texts) & set(splits.test_texts)
    assert sorted(splits.train_texts + splits.test_texts) == sorted(texts)
    assert all(text.split()[1] == names[label]
               for text, label in zip(splits.test_texts, splits.test_labels))
    again = labelled_text.split(texts, labels, names, 0.25)
    assert again.test_texts == splits.test_texts and again.train_texts == splits.train_texts
    assert labelled_text.split(texts, labels, names, 0.25, seed=1).test_texts != splits.test_texts

    # The held-out texts of a class depend on neither the input order nor the other classes.
    order = np.random.default_rng(3).permutation(len(texts))
    shuffled = labelled_text.split([texts[i] for i in order], labels[order], names, 0.25)
    assert set(shuffled.test_texts) == set(splits.test_texts)
    fewer_b = labelled_text.split(texts[:50] + texts[60:], np.delete(labels, range(50, 60)),
                                  names, 0.25)
    assert ({t for t in fewer_b.test_texts if " a " in t}
            == {t for t in splits.test_texts if " a " in t})

    none_held = labelled_text.split(texts, labels, names, 0.0)
    assert none_held.train_texts == texts and none_held.test_texts == []
    assert none_held.test_labels.shape == (0,) and none_held.test_labels.dtype == np.int32


def test_split_drops_duplicates_and_rejects_a_text_with_two_labels():
    texts = ["same", "x", "same", "y", "z", "w"]
    splits = labelled_text.split(texts, np.array([0, 0, 0, 1, 1, 1]), ("a", "b"), 0.3)
    assert sorted(splits.train_texts + splits.test_texts) == ["same", "w", "x", "y", "z"]
    with pytest.raises(DlxError, match="'same' is labelled both 'a' and 'b'"):
        labelled_text.split(texts, np.array([0, 0, 1, 1, 1, 1]), ("a", "b"), 0.3)


def test_split_rejects_bad_held_out_fractions():
    texts, labels = texts_of(10, "a") + texts_of(2, "b"), np.array([0] * 10 + [1] * 2)
    for held_out in (-0.1, 1.0, 1.5):
        with pytest.raises(DlxError, match=r"must be a fraction in \[0, 1\)"):
            labelled_text.split(texts, labels, ("a", "b"), held_out)
    with pytest.raises(DlxError, match="leaves class 'b' no training examples out of 2"):
        labelled_text.split(texts, labels, ("a", "b"), 0.75)
    with pytest.raises(DlxError, match="one label in"):
        labelled_text.split(texts, np.array([0] * 10 + [2] * 2), ("a", "b"), 0.1)
    with pytest.raises(DlxError, match="class 'c' has no examples"):
        labelled_text.split(texts, labels, ("a", "b", "c"), 0.0)


def test_files_read_label_tab_text_with_sorted_label_ids(tmp_path):
    write_tsv(tmp_path / "one.tsv", [("spam", "buy now"), ("ham", "see you\tat noon")])
    (tmp_path / "two.tsv").write_text("\n  ham  \t  lunch?  \n\nspam\tfree money\n",
                                      encoding="utf-8")
    texts, labels, names = labelled_text.examples("files", f"{tmp_path}/*.tsv")
    assert texts == ["buy now", "see you\tat noon", "lunch?", "free money"]
    assert names == ("ham", "spam") and labels.tolist() == [1, 0, 0, 1]
    assert labels.dtype == np.int32
    both = f"{tmp_path}/one.tsv, {tmp_path}/two.tsv"
    assert labelled_text.examples("files", both)[0] == texts

    config = ConfigDict({"corpus": "files", "files": both, "held_out": 0.5})
    splits = labelled_text.load(config)
    assert splits.label_names == names and len(splits.test_texts) == 2


def test_files_errors_name_the_file_and_line(tmp_path):
    write_tsv(tmp_path / "ok.tsv", [("a", "x"), ("b", "y")])
    (tmp_path / "notab.tsv").write_text("a\tfine\n\nb no tab here\n", encoding="utf-8")
    (tmp_path / "notext.tsv").write_text("a\tfine\nb\t  \n", encoding="utf-8")
    (tmp_path / "nolabel.tsv").write_text("\tfine\n", encoding="utf-8")
    (tmp_path / "one.tsv").write_text("a\tx\na\ty\n", encoding="utf-8")
    (tmp_path / "empty.tsv").write_text("\n \n", encoding="utf-8")
    (tmp_path / "latin1.tsv").write_bytes("a\tcaf\xe9\n".encode("latin-1"))
    cases = [("notab.tsv", r"notab\.tsv line 3 has no tab; expected label<TAB>text"),
             ("notext.tsv", r"notext\.tsv line 2 has an empty text"),
             ("nolabel.tsv", r"nolabel\.tsv line 1 has an empty label"),
             ("one.tsv", "every example is labelled 'a'; expected at least two labels"),
             ("empty.tsv", "has no examples"),
             ("latin1.tsv", "is not UTF-8"),
             ("missing.tsv", "no text file at"),
             ("*.csv", "no text file at")]
    for name, message in cases:
        with pytest.raises(DlxError, match=message) as error:
            labelled_text.examples("files", str(tmp_path / name))
        assert "\n" not in str(error.value)
    with pytest.raises(DlxError, match="needs data.files"):
        labelled_text.examples("files", " , ")
    with pytest.raises(DlxError, match="expected one of: pang_lee_polarity, newsgroups, files"):
        labelled_text.load(ConfigDict({"corpus": "imdb", "files": "", "held_out": 0.1}))


def test_load_splits_a_shipped_set(newsgroups):
    splits = labelled_text.load(ConfigDict({"corpus": "newsgroups", "held_out": 0.25}))
    assert splits.label_names == GROUPS
    assert np.bincount(splits.test_labels).tolist() == [24, 24]
    assert len(splits.train_texts) == 193 - 48
    assert sorted(splits.train_texts + splits.test_texts) == sorted(newsgroups[0])

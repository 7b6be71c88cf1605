"""Text corpora, the document split, WordPiece tokenizers and `dlx tokenizer train`."""

import json
import pathlib

import numpy as np
import pytest
from conftest import run_cli
from ml_collections import ConfigDict

from dlx.data import text
from dlx.data import tokenizer as tokenizer_lib
from dlx.errors import DlxError

WORDS = ("the cat sat on a mat while dogs ran past quickly and birds were singing in "
         "tall trees near running rivers under bright skies").split()


def write_corpus(path: pathlib.Path, num_docs: int = 200, seed: int = 0) -> pathlib.Path:
    """`num_docs` random sentences over WORDS, one per line, with blank lines between some."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, rng.integers(5, 20))).capitalize() + "."
             for _ in range(num_docs)]
    path.write_text("\n".join(line + ("\n" if i % 7 == 0 else "") for i, line in enumerate(lines)))
    return path


def text_config(**fields) -> ConfigDict:
    return ConfigDict({"corpus": "files", "files": "", "path": "", "subset": "",
                       "text_column": "text", "cache_dir": "", "held_out": 0.1, **fields})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tokenizer trained on a small corpus, and its saved directory."""
    root = tmp_path_factory.mktemp("tokenizer")
    docs = text.read_files([str(write_corpus(root / "corpus.txt"))])
    tokenizer = tokenizer_lib.train(docs, vocab_size=120, min_frequency=1)
    return tokenizer, tokenizer_lib.save(tokenizer, root / "out")


def test_files_source_reads_one_document_per_line(tmp_path):
    write_corpus(tmp_path / "a.txt", 30)
    write_corpus(tmp_path / "b.txt", 20, seed=1)
    docs = text.documents(text_config(files=f"{tmp_path}/*.txt"))
    assert len(docs) == 50 and all(doc and doc == doc.strip() for doc in docs)
    assert docs[:30] == text.read_files([str(tmp_path / "a.txt")])
    assert text.documents(text_config(files=f"{tmp_path}/a.txt, {tmp_path}/b.txt")) == docs


def test_corpus_errors_are_one_line(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    cases = [(text_config(files=str(tmp_path / "missing.txt")), "no text file at"),
             (text_config(files=f"{tmp_path}/*.md"), "no text file at"),
             (text_config(files=str(tmp_path / "empty.txt")), "has no documents"),
             (text_config(files=str(tmp_path / "latin1.txt")), "is not UTF-8"),
             (text_config(files=""), "needs data.files"),
             (text_config(corpus="books"), "expected one of: gensim_lee, gensim_enwiki"),
             (text_config(corpus="hub"), "needs data.path")]
    for config, message in cases:
        with pytest.raises(DlxError, match=message) as error:
            text.documents(config)
        assert "\n" not in str(error.value)


def test_hub_source_reads_a_local_copy(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(
        '{"body": "first document", "id": 1}\n{"body": "", "id": 2}\n{"body": "third", "id": 3}\n')
    config = text_config(corpus="hub", path=str(tmp_path / "data"), text_column="body",
                         cache_dir=str(tmp_path / "cache"))
    assert text.documents(config) == ["first document", "third"]
    with pytest.raises(DlxError, match="data.text_column='text' is not a column"):
        text.documents(text_config(corpus="hub", path=str(tmp_path / "data"),
                                   cache_dir=str(tmp_path / "cache")))


def test_held_out_split_is_deterministic_and_disjoint():
    docs = [f"document {i}" for i in range(100)] + ["document 3"] * 5
    splits = text.split(docs, 0.2)
    assert len(splits.held_out) == 20 and len(splits.train) == 80
    assert not set(splits.train) & set(splits.held_out)
    assert sorted(splits.train + splits.held_out) == sorted(set(docs))
    assert text.split(docs, 0.2) == splits
    assert text.split(docs, 0.0).held_out == []
    for bad in (-0.1, 1.0):
        with pytest.raises(DlxError, match="data.held_out"):
            text.split(docs, bad)


def test_trained_tokenizer_layout_and_round_trip(trained):
    tokenizer, directory = trained
    assert tokenizer_lib.special_ids(tokenizer) == (0, 1, 2, 3, 4)
    assert [tokenizer.id_to_token(i) for i in range(5)] == list(tokenizer_lib.SPECIAL_TOKENS)
    assert 30 < tokenizer.get_vocab_size() <= 120
    encoding = tokenizer.encode("The Cat sat on a mat.")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"
    assert tokenizer.decode(encoding.ids) == "the cat sat on a mat."
    assert tokenizer.encode("birds", "trees").type_ids == [0, 0, 0, 1, 1]
    assert sorted(p.name for p in directory.iterdir()) == ["tokenizer.json", "vocab.txt"]
    loaded = tokenizer_lib.load(directory)
    sentence = "Dogs were singing under tall rivers, zebras!"
    assert loaded.encode(sentence).ids == tokenizer.encode(sentence).ids
    assert loaded.encode("zebras").tokens == ["[CLS]", "[UNK]", "[SEP]"]  # No "z" in the corpus.


def test_loads_a_bert_vocab_txt_alone(trained, tmp_path):
    tokenizer, directory = trained
    (tmp_path / "vocab.txt").write_bytes((directory / "vocab.txt").read_bytes())
    loaded = tokenizer_lib.load(tmp_path)
    sentence = "Birds sat near the running rivers."
    assert loaded.encode(sentence).ids == tokenizer.encode(sentence).ids
    assert loaded.decode(loaded.encode(sentence).ids) == "birds sat near the running rivers."
    # BERT's own layout: [PAD] first, [unused*] slots, then [UNK] [CLS] [SEP] [MASK] at 100..103.
    bert = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (tmp_path / "vocab.txt").write_text("\n".join(bert + ["the", "cat", "##s"]) + "\n")
    loaded = tokenizer_lib.load(tmp_path)
    assert tokenizer_lib.special_ids(loaded) == (0, 100, 101, 102, 103)
    assert loaded.encode("The cats dog").ids == [101, 104, 105, 106, 100, 102]


def test_load_errors(tmp_path):
    with pytest.raises(DlxError, match="no tokenizer in"):
        tokenizer_lib.load(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(DlxError, match=r"lacks \[MASK\]"):
        tokenizer_lib.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(DlxError, match="is not a tokenizers file"):
        tokenizer_lib.load(tmp_path)


def test_encode_adds_no_special_tokens_and_never_truncates(trained):
    tokenizer, directory = trained
    loaded = tokenizer_lib.load(directory)
    loaded.enable_truncation(4)  # As Hugging Face checkpoints often ship.
    ids = tokenizer_lib.encode(loaded, ["the cat sat on a mat while dogs ran", "birds"])
    assert [len(x) for x in ids] == [9, 1] and ids[0].dtype == np.int32
    assert not np.isin(np.concatenate(ids), range(5)).any()


def test_cli_trains_a_tokenizer(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    result = run_cli("tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "100",
                     "--min-frequency", "1", "--out", str(tmp_path / "tok"))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["documents"] == 180 and summary["vocab_size"] <= 100
    assert summary["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert tokenizer_lib.load(tmp_path / "tok").get_vocab_size() == summary["vocab_size"]


def test_cli_missing_corpus_is_one_line(tmp_path):
    result = run_cli("tokenizer", "train", "--corpus", str(tmp_path / "nope.txt"),
                     "--out", str(tmp_path / "tok"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"dlx: error: --corpus: no text file at "
                                     f"'{tmp_path / 'nope.txt'}'; expected paths or globs of "
                                     f"UTF-8 text files, one document per line")
    assert not (tmp_path / "tok").exists()


def test_gensim_lee():
    pytest.importorskip("gensim", exc_type=ImportError)
    docs = text.documents(text_config(corpus="gensim_lee"))
    assert len(docs) == 300
    assert 55_000 < sum(len(doc.split()) for doc in docs) < 65_000  # 59,890 words.
    splits = text.split(docs, 0.1)
    assert len(splits.held_out) == 29 and not set(splits.train) & set(splits.held_out)


def test_gensim_enwiki():
    pytest.importorskip("gensim", exc_type=ImportError)
    docs = text.gensim_enwiki()
    assert 100 <= len(docs) <= 110  # 106 articles ...
    assert 400_000 < sum(len(doc.split()) for doc in docs) < 500_000  # ... of 474,407 words.
    assert all(len(doc.split()) >= text.ARTICLE_MIN_WORDS for doc in docs)
    assert not any("'''" in doc or "[[" in doc or "\n==" in doc for doc in docs)
    assert docs[1].startswith("Autism is a neurodevelopmental disorder")

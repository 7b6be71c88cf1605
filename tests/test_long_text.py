"""`data.long_text="windows"` in the labelled_text source and the per-text scores of its windows."""

import json

import flax.linen as nn
import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from dlx import tasks
from dlx.config import base
from dlx.data import Splits, chunking, labelled_text, tokenizer as tokenizer_lib, tokens
from dlx.errors import DlxError

WORDS = ["orbit", "launch", "moon", "god", "faith", "belief", "rocket", "church"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(tsv path, tokenizer directory): 24 texts of 2-40 words, labels by parity."""
    rng = np.random.default_rng(0)
    rows = [(f"c{i % 2}", " ".join(rng.choice(WORDS, rng.integers(2, 41))) + f" n{i}")
            for i in range(24)]
    directory = tmp_path_factory.mktemp("long_text")
    path = directory / "texts.tsv"
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")
    tokenizer = tokenizer_lib.train([text for _, text in rows], vocab_size=60, min_frequency=1)
    tokenizer_lib.save(tokenizer, directory / "tokenizer")
    return path, directory / "tokenizer"


def _data_config(corpus, **settings) -> ConfigDict:
    path, tokenizer = corpus
    return ConfigDict({"corpus": "files", "files": str(path), "held_out": 0.25,
                       "tokenizer": str(tokenizer), "seq_len": 10, "validation_size": 0,
                       **settings})


def test_windows_carry_their_texts_label_and_index_and_cover_every_token(corpus):
    config = _data_config(corpus, long_text="windows", window_stride=3)
    splits = tokens.load_labelled(config)
    sets = labelled_text.load(config)
    tokenizer = tokenizer_lib.load(config.tokenizer)
    ids = tokenizer_lib.special_ids(tokenizer)
    for name, texts, labels in (("train", sets.train_texts, sets.train_labels),
                                ("test", sets.test_texts, sets.test_labels)):
        rows = splits.metadata["documents"][name]
        x_WT, y_W, doc_W = (getattr(splits, name)[key] for key in ("x", "y", "doc"))
        assert x_WT.shape == (rows["windows"], 10) and doc_W.dtype == np.int32
        assert rows["documents"] == len(texts) and np.array_equal(np.unique(doc_W),
                                                                  np.arange(len(texts)))
        np.testing.assert_array_equal(y_W, labels[doc_W])
        longer = 0
        for d, encoded in enumerate(tokenizer_lib.encode(tokenizer, texts)):
            windows = x_WT[doc_W == d]
            starts = chunking.window_starts(len(encoded), 8, 3)
            assert len(windows) == len(starts)
            longer += len(windows) > 1
            covered = np.zeros(len(encoded), bool)
            for row, start in zip(windows, starts):
                real = row[row != ids.pad]
                assert real[0] == ids.cls and real[-1] == ids.sep
                np.testing.assert_array_equal(real[1:-1], encoded[start:start + 8])
                covered[start:start + len(real) - 2] = True
            assert covered.all()
        assert rows["longer_than_a_window"] == longer > 0
    assert splits.metadata["documents"]["stride"] == 3
    halves = tokens.load_labelled(_data_config(corpus, long_text="windows"))
    assert halves.metadata["documents"]["stride"] == 4  # (seq_len - 2) // 2


def test_truncate_is_the_default_and_unchanged(corpus):
    default = tokens.load_labelled(_data_config(corpus))
    explicit = tokens.load_labelled(_data_config(corpus, long_text="truncate", window_stride=99))
    sets = labelled_text.load(_data_config(corpus))
    tokenizer = tokenizer_lib.load(corpus[1])
    for splits in (default, explicit):
        assert set(splits.train) == set(splits.test) == {"x", "y"}
        assert "documents" not in splits.metadata
        np.testing.assert_array_equal(
            splits.test["x"], tokens.encode_classification(tokenizer, sets.test_texts, 10))
        np.testing.assert_array_equal(splits.train["y"], sets.train_labels)


@pytest.mark.parametrize("settings,message", [
    ({"long_text": "chunks"}, r"data.long_text='chunks' is unknown; expected one of: truncate, "
                              r"windows"),
    ({"long_text": "windows", "window_stride": 9}, r"data.window_stride=9 must be an int in "
                                                   r"\[1, data.seq_len - 2 = 8\]"),
    ({"long_text": "windows", "window_stride": -1}, r"data.window_stride=-1 must be"),
    ({"long_text": "windows", "window_stride": 2.5}, r"data.window_stride=2.5 must be"),
    ({"long_text": "windows", "window_stride": "4"}, r"data.window_stride='4' must be"),
    ({"long_text": "windows", "validation_size": 4}, r"carve windows, not documents"),
    ({"long_text": "windows", "seq_len": 2}, r"data.seq_len=2 is too short"),
])
def test_bad_long_text_settings_are_one_line_errors(corpus, settings, message):
    with pytest.raises(DlxError, match=message) as error:
        tokens.load_labelled(_data_config(corpus, **settings))
    assert "\n" not in str(error.value)


def _numpy_accuracies(logits_WC, doc_W, labels_D):
    pooled = {"mean": np.stack([logits_WC[doc_W == d].mean(0) for d in range(len(labels_D))]),
              "max": np.stack([logits_WC[doc_W == d].max(0) for d in range(len(labels_D))]),
              "first": np.stack([logits_WC[doc_W == d][0] for d in range(len(labels_D))])}
    return {how: float((p.argmax(1) == labels_D).mean()) for how, p in pooled.items()}


def test_document_accuracies_pool_per_text():
    # Text 0: one confident wrong window outvotes on max but not on mean; text 1 is one window.
    logits_WC = np.array([[0.0, 3.0], [2.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    doc_W, labels_D = np.array([0, 0, 0, 1, 2]), np.array([0, 0, 0])
    accuracy = tasks.document_accuracies(logits_WC, doc_W, labels_D[doc_W])
    assert accuracy == {"mean": 2 / 3, "max": 1 / 3, "first": 1 / 3}
    assert accuracy == _numpy_accuracies(logits_WC, doc_W, labels_D)
    with pytest.raises(DlxError, match="different labels"):
        tasks.document_accuracies(logits_WC, doc_W, np.array([0, 1, 0, 0, 0]))
    with pytest.raises(DlxError, match="with a window each"):
        tasks.document_accuracies(logits_WC, np.array([0, 0, 0, 2, 2]), np.zeros(5, int))


class _BagOfTokens(nn.Module):
    """Mean token embedding -> logits (B, 3)."""

    @nn.compact
    def __call__(self, x_BT, train: bool = False):
        return nn.Dense(3)(nn.Embed(20, 4)(x_BT).mean(1))


def test_write_artifacts_pools_the_models_window_logits(tmp_path):
    rng = np.random.default_rng(1)
    doc_W = np.repeat(np.arange(6), [1, 3, 2, 4, 1, 2]).astype(np.int32)
    labels_D = rng.integers(0, 3, 6).astype(np.int32)
    test = {"x": rng.integers(0, 20, (len(doc_W), 5)).astype(np.int32), "y": labels_D[doc_W],
            "doc": doc_W}
    model = _BagOfTokens()
    params = model.init(jax.random.PRNGKey(0), test["x"][:1])["params"]
    config = base()
    config.model.name = "bert_classifier"
    task = tasks.build(config, model, {"documents": {}})
    assert isinstance(task, tasks.DocumentClassification)
    assert not hasattr(tasks.build(config, model, {}), "write_artifacts")
    task = tasks.DocumentClassification(model, batch_size=4)  # Several batches, the last padded.
    splits = Splits(train=test, test=test, num_classes=3)
    returned = task.write_artifacts(params, splits, tmp_path)
    logits_WC = np.asarray(model.apply({"params": params}, test["x"]))
    expected = _numpy_accuracies(logits_WC, doc_W, labels_D)
    written = json.loads((tmp_path / "documents.json").read_text())
    assert returned == {"documents": "documents.json", "document_accuracy_mean": expected["mean"],
                        "document_accuracy_max": expected["max"]}
    assert written["accuracy"] == pytest.approx(expected)
    assert written["documents"] == 6 and written["windows"] == len(doc_W)
    assert written["window_accuracy"] == pytest.approx(
        (logits_WC.argmax(1) == test["y"]).mean())
    no_docs = Splits(train=test, test={"x": test["x"], "y": test["y"]}, num_classes=3)
    assert task.write_artifacts(params, no_docs, tmp_path / "none") == {}

"""Text-classification baselines: mean word vectors, and a run whose baselines beat the majority
class on the newsgroups posts."""

import json

import numpy as np
import pytest

from dlx import cli
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError
from dlx.text_baselines import mean_vectors
from conftest import REPO


def test_mean_vectors_average_known_words_and_zero_otherwise():
    kv = KeyedVectors(["cat", "dog"], np.array([[1.0, 0.0], [0.0, 3.0]], np.float32))
    rows = mean_vectors(["The cat, the DOG and a cat.", "nothing known here"], kv)
    np.testing.assert_allclose(rows, [[2 / 3, 1.0], [0.0, 0.0]], rtol=1e-6)


def test_baselines_beat_the_majority_class_on_newsgroups(tmp_path, capsys):
    pytest.importorskip("gensim")
    pytest.importorskip("sklearn")
    assert cli.run(["train", "--config", str(REPO / "experiments" / "text_baselines.py"),
                    "--workdir", str(tmp_path), "--config.model.vector_corpus=gensim_lee",
                    "--config.model.dim=32"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["train_texts"], summary["test_texts"]) == (145, 48)
    results = summary["results"]
    assert results["majority_class"]["accuracy"] == 0.5
    for name in ("bag_of_words", "tfidf"):
        assert results[name]["accuracy"] > 0.65 and results[name]["macro_f1"] > 0.65, name
    assert results["word_vectors"]["accuracy"] > 0.55 and results["word_vectors"]["features"] == 32
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_bad_kind_and_settings_are_one_line_errors(tmp_path):
    config = tmp_path / "bad.py"
    config.write_text("from dlx.text_baselines import base\n\n"
                      "def get_config():\n"
                      "    config = base()\n"
                      "    config.kind = 'baselines'\n"
                      "    return config\n")
    with pytest.raises(DlxError, match="kind='baselines' is not a kind of experiment"):
        cli.run(["train", "--config", str(config), "--workdir", str(tmp_path / "w")])
    with pytest.raises(DlxError, match=r"model\.C=0\.0 must be > 0"):
        cli.run(["train", "--config", "text_baselines", "--workdir", str(tmp_path / "w"),
                 "--config.model.C=0"])

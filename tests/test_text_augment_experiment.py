"""The text_augment experiment: EDA-augmented training texts for the text baselines."""

import json

import numpy as np
import pytest

from dlx import cli
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError
from dlx.text_baselines import REPRESENTATIONS, augment_texts
from conftest import REPO

TEXTS = ["The rocket reached orbit after launch.", "God and faith are old questions.",
         "A shuttle launch into orbit."]


def _kv() -> KeyedVectors:
    words = ["rocket", "shuttle", "orbit", "launch", "god", "faith", "questions", "old"]
    return KeyedVectors(words, np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))


def test_augmented_sets_have_one_plus_n_times_the_texts_and_repeat_per_seed():
    labels_N = np.array([1, 0, 1])
    texts, augmented_labels = augment_texts(TEXTS, labels_N, 3, 0.2, _kv(), seed=5)
    assert len(texts) == 4 * len(TEXTS) and texts[:3] == TEXTS
    np.testing.assert_array_equal(augmented_labels, [1, 0, 1] + [1] * 3 + [0] * 3 + [1] * 3)
    assert all(isinstance(t, str) and t for t in texts)
    assert augment_texts(TEXTS, labels_N, 3, 0.2, _kv(), seed=5)[0] == texts
    assert augment_texts(TEXTS, labels_N, 3, 0.2, _kv(), seed=6)[0] != texts
    assert augment_texts(TEXTS, labels_N, 0, 0.2, _kv(), seed=5)[0] == TEXTS


def test_text_augment_run_writes_both_result_sets_and_the_chart(tmp_path, capsys):
    pytest.importorskip("gensim")
    pytest.importorskip("sklearn")
    args = ["train", "--config", str(REPO / "experiments" / "text_augment.py"),
            "--config.model.vector_corpus=gensim_lee", "--config.model.dim=32",
            "--config.model.augment=2"]
    assert cli.run(args + ["--workdir", str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["train_texts"], summary["train_texts_augmented"]) == (145, 3 * 145)
    for table in ("results", "results_augmented"):
        for name in REPRESENTATIONS:
            row = summary[table][name]
            assert 0.5 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0, (table, name)
    assert (tmp_path / "a" / "augment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "a" / "summary.json").read_text()) == summary
    assert cli.run(args + ["--workdir", str(tmp_path / "b")]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for table in ("results", "results_augmented"):
        assert {k: {m: v for m, v in row.items() if m != "seconds"} for k, row in
                again[table].items()} == {k: {m: v for m, v in row.items() if m != "seconds"}
                                          for k, row in summary[table].items()}


@pytest.mark.parametrize("override,message", [
    ("--config.model.augment=-1", r"model\.augment=-1 must be an int >= 0"),
    ("--config.model.augment_alpha=0", r"model\.augment_alpha=0(\.0)? must be in \(0, 1\]")])
def test_bad_augment_settings_are_one_line_errors(tmp_path, override, message):
    with pytest.raises(DlxError, match=message):
        cli.run(["train", "--config", "text_augment", "--workdir", str(tmp_path / "w"),
                 override])

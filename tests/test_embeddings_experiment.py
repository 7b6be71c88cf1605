"""Word-vector experiments through `dlx train` / `dlx eval`: outputs, gensim reads the vectors,
a finished run is not retrained, and bad settings are one-line errors."""

import json

import pytest

from dlx import cli
from dlx.embeddings.vectors import KeyedVectors
from dlx.errors import DlxError
from conftest import REPO

pytest.importorskip("gensim")  # the Lee corpus and the evaluation sets ship with gensim

LEE = ["--config.data.corpus=gensim_lee", "--config.eval.neighbours=war,qwertyuiop"]


def _dlx(capsys, *args: str) -> dict:
    assert cli.run(list(args)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _train(capsys, workdir, name: str, *overrides: str) -> dict:
    return _dlx(capsys, "train", "--config", str(REPO / "experiments" / f"{name}.py"),
                "--workdir", str(workdir), *LEE, *overrides)


def test_ppmi_svd_run_writes_vectors_gensim_reads_and_is_not_retrained(tmp_path, capsys):
    from gensim.models import KeyedVectors as GensimVectors
    summary = _train(capsys, tmp_path, "ppmi_svd", "--config.model.dim=20")
    assert summary["model"] == "ppmi_svd" and summary["dim"] == 20
    assert summary["corpus_words"] > 50_000
    assert 1000 < summary["vocab_size"] < summary["corpus_words"]
    assert 0 < summary["wordsim353_oov"] < 1 and summary["wordsim353"] > 0.1

    scores = json.loads((tmp_path / "eval.json").read_text())
    assert scores["wordsim353"]["spearman"] == summary["wordsim353"]
    assert len(scores["neighbours"]["war"]) == 8 and scores["neighbours"]["qwertyuiop"] is None

    ours = KeyedVectors.load_word2vec_format(tmp_path / "vectors.txt")
    theirs = GensimVectors.load_word2vec_format(str(tmp_path / "vectors.txt"))
    assert [w for w, _ in ours.most_similar("war", topn=5)] == \
        [w for w, _ in theirs.most_similar("war", topn=5)]

    written = (tmp_path / "vectors.txt").stat().st_mtime_ns
    assert _train(capsys, tmp_path, "ppmi_svd", "--config.model.dim=20") == summary
    assert (tmp_path / "vectors.txt").stat().st_mtime_ns == written

    evaluated = _dlx(capsys, "eval", "--config", "ppmi_svd", "--workdir", str(tmp_path), *LEE,
                     "--config.model.dim=20")
    assert evaluated["eval"]["wordsim353"] == pytest.approx(summary["wordsim353"], abs=1e-6)


def test_word2vec_run_learns_and_refuses_another_config_in_its_workdir(tmp_path, capsys):
    summary = _train(capsys, tmp_path, "word2vec_sgns", "--config.model.epochs=2",
                     "--config.model.dim=32")
    assert summary["model"] == "word2vec" and summary["words_per_s"] > 0
    assert summary["wordsim353"] > 0.05
    with pytest.raises(DlxError, match="different model"):
        _train(capsys, tmp_path, "word2vec_sgns", "--config.model.epochs=3")


def test_bad_embedding_settings_are_one_line_errors(tmp_path, capsys):
    config = tmp_path / "bad.py"
    config.write_text("from dlx.embeddings.experiment import base\n\n"
                      "def get_config():\n"
                      "    config = base()\n"
                      "    config.model.name = 'word2vec'\n"
                      "    config.model.windw = 5\n"
                      "    return config\n")
    with pytest.raises(DlxError, match=r"model\.windw is not a setting of word2vec; expected "
                                       r"any of: .*window"):
        cli.run(["train", "--config", str(config), "--workdir", str(tmp_path / "w")])
    with pytest.raises(DlxError, match="model.name='lsa' is not a word-vector model"):
        _train(capsys, tmp_path / "w", "ppmi_svd", "--config.model.name=lsa")
    with pytest.raises(DlxError, match="no vectors.txt in"):
        _dlx(capsys, "eval", "--config", "ppmi_svd", "--workdir", str(tmp_path / "empty"))


def test_fasttext_run_saves_a_model_that_answers_unseen_words(tmp_path, capsys):
    from dlx.embeddings.experiment import load_vectors
    summary = _train(capsys, tmp_path, "fasttext_sg", "--config.model.epochs=1",
                     "--config.model.dim=16", "--config.model.bucket=20000")
    assert summary["model"] == "fasttext" and summary["dim"] == 16
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert len(scores["neighbours"]["qwertyuiop"]) == 8  # an unseen word still has neighbours
    vectors = load_vectors(tmp_path)
    assert "qwertyuiop" not in vectors and abs(vectors["qwertyuiop"]).sum() > 0
    assert KeyedVectors.load_word2vec_format(tmp_path / "vectors.txt").words == vectors.words

"""benchmarks/word2vec.py runs end to end on a tiny corpus and emits one full line per model."""

from __future__ import annotations

import json
import math

import pytest

from conftest import load_benchmark

QUALITY = ("wordsim353", "simlex999", "analogy", "wordsim353_oov", "simlex999_oov",
           "analogy_oov")


def test_quick_run_emits_speed_and_quality_of_both(capsys):
    """--quick trains each model in dlx and in its peer on the same tokens and reports finite
    speeds, ratios and quality figures for both, over the same vocabulary."""
    pytest.importorskip("gensim", exc_type=ImportError)
    load_benchmark("word2vec").main(["--quick", "--workers", "1"])
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [record["name"] for record in records] == [
        "word2vec-sgns-vs-gensim", "word2vec-cbow-vs-gensim", "fasttext-sg-vs-gensim",
        "glove-vs-ppmi-svd"]
    for record in records:
        assert record["unit"] == "words/s" and record["rounds"] == 1
        for key in ("dlx", "peer", "ratio", "dlx_warm", "ratio_warm"):
            assert math.isfinite(record[key]) and record[key] > 0, key
        assert record["dlx_vocab"] == record["peer_vocab"] > 0
        assert record["corpus_words"] > record["dlx_vocab"]
        assert record["hyperparameters"].get("epochs", 1) == 1
        for side in ("dlx_quality", "peer_quality"):
            assert set(record[side]) == set(QUALITY)
            assert all(math.isfinite(value) for value in record[side].values()), side
            assert all(0 <= record[side][key] <= 1 for key in QUALITY if "oov" in key)
        # Same vocabulary, so the same pairs and questions are skipped on both sides.
        assert all(record["dlx_quality"][key] == record["peer_quality"][key]
                   for key in QUALITY if "oov" in key)
    assert records[0]["hyperparameters"]["sg"] and not records[1]["hyperparameters"]["sg"]
    assert records[2]["hyperparameters"]["bucket"] == 20_000

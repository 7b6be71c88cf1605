"""bert_mlm_tiny, gpt_tiny and bert_classify end to end on a small text corpus: resume, export,
fine-tuning from the export, and `dlx generate`."""

import json
import os
import signal

import numpy as np
import pytest

from dlx import cli
from dlx.errors import DlxError
from conftest import REPO

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the farmer", "a bird"]
VERBS = ["sees", "likes", "chases", "finds", "feeds", "watches"]
OBJECTS = ["the ball", "a fish", "the red car", "some bread", "the river", "a small house"]
SMALL_BERT = ["--config.model.hidden_size=16", "--config.model.num_layers=1",
              "--config.model.num_heads=2", "--config.model.max_length=32"]
SMALL_TRAIN = ["--config.train.batch_size=8", "--config.train.eval_batch_size=16",
               "--config.train.log_every=3", "--config.train.eval_every=3",
               "--config.train.checkpoint_every=3", "--config.optim.warmup_steps=1"]


def _corpus_overrides(path) -> list[str]:
    return ["--config.data.corpus=files", f"--config.data.files={path}",
            "--config.data.vocab_size=120", "--config.data.seq_len=32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """120 one-line documents of 2-6 simple sentences."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(120):
        sentences = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} ."
                     for _ in range(rng.integers(2, 7))]
        lines.append(" ".join(sentences))
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _dlx(capsys, *argv: str) -> str:
    """Runs `dlx ARGV` in this process; returns the last line it printed."""
    assert cli.run(list(argv)) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def _train(capsys, workdir, experiment: str, *overrides: str) -> dict:
    config = str(REPO / "experiments" / f"{experiment}.py")
    return json.loads(_dlx(capsys, "train", "--config", config, "--workdir", str(workdir),
                           *overrides))


@pytest.fixture(scope="module")
def mlm_run(corpus, tmp_path_factory):
    """(workdir, overrides) of a 6-step bert_mlm_tiny run on `corpus`."""
    workdir = tmp_path_factory.mktemp("mlm")
    overrides = [*_corpus_overrides(corpus), *SMALL_BERT, *SMALL_TRAIN,
                 "--config.model.intermediate_size=32", "--config.data.max_predictions=5"]
    config = str(REPO / "experiments" / "bert_mlm_tiny.py")
    assert cli.run(["train", "--config", config, "--workdir", str(workdir), *overrides,
                    "--config.train.steps=6"]) == 0
    return workdir, overrides


def test_mlm_resume_equals_uninterrupted(mlm_run, tmp_path, capsys):
    workdir, overrides = mlm_run
    capsys.readouterr()
    config = str(REPO / "experiments" / "bert_mlm_tiny.py")
    argv = ["train", "--config", config, "--workdir", str(tmp_path), *overrides,
            "--config.train.steps=6"]

    def stop_after_step_3(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # The loop saves, then returns.

    assert cli.run(argv, step_hook=stop_after_step_3) == 0
    assert json.loads((tmp_path / "config.json").read_text())["train"]["steps"] == 6
    assert not (tmp_path / "summary.json").exists()
    resumed = json.loads(_dlx(capsys, *argv))
    straight = json.loads((workdir / "summary.json").read_text())
    assert resumed["eval"] == straight["eval"]
    rows = lambda d: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    strip = lambda row: {k: v for k, v in row.items() if k != "steps_per_s"}
    assert [strip(r) for r in rows(tmp_path)] == [strip(r) for r in rows(workdir)]
    assert set(straight["baseline"]["unigram"]) == {"loss", "perplexity", "accuracy"}
    assert straight["eval"]["test"]["perplexity"] == pytest.approx(
        np.exp(straight["eval"]["test"]["loss"]))


def test_export_loads_in_transformers_and_fine_tunes(mlm_run, tmp_path, capsys):
    workdir, overrides = mlm_run
    out = tmp_path / "hf"
    config = str(REPO / "experiments" / "bert_mlm_tiny.py")
    exported = json.loads(_dlx(capsys, "export", "--config", config, "--workdir", str(workdir),
                               "--out", str(out), *overrides))
    assert exported["step"] == 6
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors",
                                                "tokenizer.json", "vocab.txt"}
    transformers = pytest.importorskip("transformers")
    import torch
    model = transformers.BertForMaskedLM.from_pretrained(out).eval()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(out)
    ids = tokenizer(["the cat sees a fish ."], return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()

    labelled = tmp_path / "labelled.tsv"
    labelled.write_text("".join(f"{'animal' if i % 2 else 'thing'}\t"
                                f"{SUBJECTS[i % 6] if i % 2 else OBJECTS[i % 6]} {i}\n"
                                for i in range(40)))
    summary = _train(capsys, tmp_path / "classify", "bert_classify",
                     f"--config.model.init_from={out}", f"--config.data.tokenizer={out}",
                     "--config.data.corpus=files", f"--config.data.files={labelled}",
                     "--config.data.seq_len=16", "--config.train.steps=4", *SMALL_TRAIN)
    assert summary["final_step"] == 4
    assert summary["baseline"]["majority_class"]["accuracy"] == 0.5


def test_bert_classify_without_a_checkpoint_is_one_line(tmp_path):
    config = str(REPO / "experiments" / "bert_classify.py")
    with pytest.raises(DlxError, match="data.tokenizer=.*missing does not exist; expected"):
        cli.run(["train", "--config", config, "--workdir", str(tmp_path / "run"),
                 "--config.data.tokenizer=" + str(tmp_path / "missing"),
                 "--config.data.corpus=files", f"--config.data.files={REPO / 'README.md'}"])
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
    (tmp_path / "x.tsv").write_text("".join(f"{i % 2}\tthe {i}\n" for i in range(8)))
    with pytest.raises(DlxError, match="has no config.json; expected a Hugging Face BERT"):
        cli.run(["train", "--config", config, "--workdir", str(tmp_path / "run"),
                 f"--config.model.init_from={tmp_path}", f"--config.data.tokenizer={tmp_path}",
                 "--config.data.corpus=files", f"--config.data.files={tmp_path / 'x.tsv'}"])


def test_gpt_trains_and_generates(corpus, tmp_path, capsys, mlm_run):
    overrides = [*_corpus_overrides(corpus), *SMALL_BERT, *SMALL_TRAIN,
                 "--config.model.mlp_dim=32", "--config.train.steps=3"]
    summary = _train(capsys, tmp_path, "gpt_tiny", *overrides)
    assert summary["eval"]["test"]["perplexity"] > 1
    config = str(REPO / "experiments" / "gpt_tiny.py")
    argv = ["generate", "--config", config, "--workdir", str(tmp_path), "--prompt", "The cat",
            "--max-new-tokens", "8", *overrides]
    greedy = _dlx(capsys, *argv, "--temperature", "0")
    assert greedy.startswith("the cat")
    assert greedy == _dlx(capsys, *argv, "--temperature", "0", "--seed", "5")
    with pytest.raises(DlxError, match="needs a causal language model"):
        mlm_dir, mlm_overrides = mlm_run
        cli.run(["generate", "--config", str(REPO / "experiments" / "bert_mlm_tiny.py"),
                 "--workdir", str(mlm_dir), "--prompt", "the", *mlm_overrides])

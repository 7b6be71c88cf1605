"""The issue's teaching experiments reproduce their stated outcomes (shortened where they are long)."""

import json

import pytest

from conftest import REPO, run_cli, train_args, train_experiment

EXPERIMENTS = REPO / "experiments"


def _runs(sweep):
    return {row["run"]: row for row in sweep["runs"]}


def test_xor_needs_a_hidden_layer(tmp_path):
    perceptron = train_experiment(tmp_path / "p", "xor_perceptron")
    mlp = train_experiment(tmp_path / "m", "xor_mlp")
    assert perceptron["eval"]["test"]["accuracy"] <= 0.75
    assert mlp["eval"]["test"]["accuracy"] == 1.0
    assert (tmp_path / "m" / "curves.png").exists()


@pytest.mark.slow(16)
def test_zero_and_constant_init_keep_hidden_units_identical_and_a_rerun_trains_nothing(tmp_path):
    args = ("--config.train.steps=1000",)
    sweep = train_experiment(tmp_path, "init_symmetry", *args)
    runs = _runs(sweep)
    for name in ("zeros", "constant"):
        units = runs[name]["reports"]["distinct_units"]
        assert units["Dense_0"] == units["Dense_1"] == 1, (name, units)
        assert runs[name]["eval"]["test"]["accuracy"] < 0.35, name
    for name in ("normal_001", "he", "xavier"):
        assert runs[name]["reports"]["distinct_units"]["Dense_0"] == 100
        assert runs[name]["eval"]["test"]["accuracy"] > 0.55, name
    assert (tmp_path / "sweep.png").exists() and (tmp_path / "he" / "curves.png").exists()
    # The finished sweep, run again, resumes each run at its last step and trains nothing.
    result = run_cli(*train_args(tmp_path, *args, config=str(EXPERIMENTS / "init_symmetry.py")))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("from checkpoint at step 1000") == 5
    assert "train_loss" not in result.stderr
    drop_time = lambda s: [{k: v for k, v in r.items() if k not in ("wall_s", "examples_per_s")}
                           for r in s["runs"]]
    assert drop_time(json.loads(result.stdout)) == drop_time(sweep)


@pytest.mark.slow(20)
def test_optimizer_sweep_writes_one_row_and_curve_each(tmp_path):
    sweep = train_experiment(tmp_path, "optimizers_mnist1d", "--config.train.steps=300",
                             "--config.train.eval_every=100",
                             "--config.train.checkpoint_every=300")
    runs = _runs(sweep)
    assert set(runs) == {"sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw",
                         "sgd_batch", "sgd_single"}
    assert all(row["final_step"] == 300 for row in runs.values())
    accuracy = {name: row["eval"]["test"]["accuracy"] for name, row in runs.items()}
    assert accuracy["adam"] > accuracy["sgd"] > accuracy["sgd_single"]
    table = (tmp_path / "sweep.md").read_text()
    assert all(f"| {name} |" in table for name in runs)
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "sweep.json").read_text()) == sweep


@pytest.mark.slow(15)
def test_regularisation_shrinks_the_train_test_gap(tmp_path):
    runs = _runs(train_experiment(tmp_path, "regularization_mnist1d", "--config.train.steps=1500"))
    gap = {name: row["eval"]["train"]["accuracy"] - row["eval"]["test"]["accuracy"]
           for name, row in runs.items()}
    assert runs["none"]["eval"]["train"]["accuracy"] == 1.0
    for name in ("l2", "dropout", "early_stopping"):
        assert gap[name] < gap["none"] - 0.04, gap
    assert runs["early_stopping"]["early_stopping"]["stopped_early"]


@pytest.mark.parametrize("override, fragment", [
    ("--config.train.eval_splits=val", "data.validation_size is 0"),
    ("--config.train.reports=unit_count", "unknown report unit_count"),
])
def test_sweep_config_errors_are_one_line(tmp_path, override, fragment):
    result = run_cli(*train_args(tmp_path, override,
                                 config=str(EXPERIMENTS / "init_symmetry.py")))
    assert result.returncode == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1

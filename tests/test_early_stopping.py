"""Early stopping: patience and min_delta, the best checkpoint restored, and a kill mid-run."""

import json
import shutil

import pytest

from dlx.errors import DlxError
from dlx.train.early_stopping import EarlyStopping, metric_mode

from conftest import REPO, run_cli, train_args

RUN = ("--config.train.steps=1000", "--config.data.validation_size=500",
       "--config.train.eval_splits=val,test", "--config.train.eval_every=50",
       "--config.train.log_every=50", "--config.train.checkpoint_every=100",
       "--config.train.early_stopping.metric=eval_val_loss",
       "--config.train.early_stopping.patience=4", "--config.model.dropout=0.1")
KILL_DRIVER = [str(REPO / "tests" / "kill_driver.py")]


def test_patience_counts_evaluations_without_improvement():
    stopper = EarlyStopping("eval_val_loss", "min", patience=3, min_delta=0.0)
    improved = [stopper.update(step, value) for step, value in
                enumerate([1.0, 0.9, 0.95, 0.91, 0.92], start=1)]
    assert improved == [True, True, False, False, False]
    assert stopper.should_stop and stopper.best == 0.9 and stopper.best_step == 2


def test_min_delta_and_max_mode():
    stopper = EarlyStopping("eval_val_accuracy", "max", patience=2, min_delta=0.01)
    assert stopper.update(1, 0.50)
    assert not stopper.update(2, 0.505)  # Within min_delta: not an improvement.
    assert stopper.update(3, 0.52) and stopper.bad_evals == 0
    restored = EarlyStopping("eval_val_accuracy", "max", patience=2, min_delta=0.01)
    restored.restore(json.loads(json.dumps(stopper.state())))
    assert restored == stopper


@pytest.mark.parametrize("metric, splits, fragment", [
    ("eval_val_loss", ("test",), "add the split to train.eval_splits"),
    ("val_loss", ("val", "test"), "expected one of: eval_val_loss"),
    ("eval_test_f1", ("test",), "is not an evaluated metric"),
])
def test_bad_metric_is_a_clear_error(metric, splits, fragment):
    with pytest.raises(DlxError, match=fragment):
        metric_mode(metric, splits)
    assert metric_mode("eval_test_accuracy", ("test",)) == "max"


def _summary(workdir):
    summary = json.loads((workdir / "summary.json").read_text())
    return {k: summary[k] for k in ("final_step", "eval", "early_stopping")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("early_stopping")
    result = run_cli(*train_args(workdir, *RUN))
    assert result.returncode == 0, result.stderr
    return workdir


def test_stops_early_and_restores_the_best_checkpoint(uninterrupted):
    summary = _summary(uninterrupted)
    rows = [json.loads(line) for line in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["eval_val_loss"], r["step"]) for r in rows if "eval_val_loss" in r]
    best_loss, best_step = min(evals)
    stopping = summary["early_stopping"]
    assert stopping["stopped_early"] and stopping["stopped_step"] == rows[-1]["step"] < 1000
    assert stopping["stopped_step"] - best_step == 4 * 50  # Patience 4, an eval every 50 steps.
    assert stopping["best_step"] == summary["final_step"] == best_step
    assert summary["eval"]["val"]["loss"] == pytest.approx(best_loss, rel=1e-6)
    assert [p.name for p in (uninterrupted / "best").iterdir()] == [str(best_step)]


def test_rerunning_a_stopped_run_does_not_train_again(tmp_path, uninterrupted):
    shutil.copytree(uninterrupted, tmp_path / "run")
    again = run_cli(*train_args(tmp_path / "run", *RUN))
    assert again.returncode == 0, again.stderr
    assert "step " not in again.stderr.replace("at step", "")  # No training progress lines.
    assert _summary(tmp_path / "run") == _summary(uninterrupted)


def test_sigkill_after_a_newer_best_then_rerun_equals_uninterrupted(tmp_path, uninterrupted):
    best_step = _summary(uninterrupted)["early_stopping"]["best_step"]
    # Killed after the best is saved but before a regular checkpoint records it: the resume
    # starts from an older checkpoint, discards the newer best and finds it again.
    checkpoint = (best_step - 1) // 100 * 100
    killed = run_cli(*train_args(tmp_path, *RUN), script=KILL_DRIVER + [
        str(best_step + 10), "SIGKILL", str(tmp_path / "checkpoints" / str(checkpoint))])
    assert killed.returncode == -9
    resumed = run_cli(*train_args(tmp_path, *RUN))
    assert resumed.returncode == 0, resumed.stderr
    assert f"from checkpoint at step {checkpoint}" in resumed.stderr
    assert _summary(tmp_path) == _summary(uninterrupted)
    assert [p.name for p in (tmp_path / "best").iterdir()] == [str(best_step)]

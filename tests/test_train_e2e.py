"""End to end through the CLI: the default experiment's accuracy, outputs, kill and resume."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from dlx import config as config_lib
from dlx.train import loop

from conftest import MLP_CONFIG, REPO, run_cli, train_args

KILL_RUN = ("--config.train.steps=400", "--config.train.log_every=50",
            "--config.train.eval_every=200", "--config.train.checkpoint_every=100",
            "--config.model.dropout=0.1")
KILL_DRIVER = [str(REPO / "tests" / "kill_driver.py")]


def final_state(workdir: pathlib.Path, overrides=KILL_RUN):
    config = config_lib.build(MLP_CONFIG, list(overrides))
    _, step, state = loop.restore_latest(config, workdir)
    return step, jax.device_get(state)


def comparable_summary(workdir: pathlib.Path) -> dict:
    summary = json.loads((workdir / "summary.json").read_text())
    return {k: summary[k] for k in ("final_step", "train_loss", "eval")}


def test_default_experiment_reaches_paper_accuracy(tmp_path):
    result = run_cli(*train_args(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_step"] == 6000
    assert summary["eval"]["test"]["accuracy"] >= 0.66, summary  # MNIST-1D paper: 68 %.
    for key in ("train_loss", "wall_s", "examples_per_s", "devices"):
        assert key in summary
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(100, 6001, 100))
    assert all("train_loss" in r for r in rows) and "eval_test_accuracy" in rows[-1]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "checkpoints" / "6000").is_dir()
    assert json.loads((tmp_path / "config.json").read_text())["name"] == "mnist1d_mlp"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pathlib.Path:
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*train_args(workdir, *KILL_RUN))
    assert result.returncode == 0, result.stderr
    return workdir


def assert_same_run(workdir: pathlib.Path, reference: pathlib.Path) -> None:
    step, state = final_state(workdir)
    ref_step, ref_state = final_state(reference)
    assert step == ref_step == 400
    for leaf, ref_leaf in zip(jax.tree.leaves(state), jax.tree.leaves(ref_state)):
        np.testing.assert_array_equal(leaf, ref_leaf)  # Bitwise.
    assert comparable_summary(workdir) == comparable_summary(reference)
    assert (workdir / "metrics.jsonl").read_text().count("\n") == \
        (reference / "metrics.jsonl").read_text().count("\n")


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, uninterrupted):
    killed = run_cli(*train_args(tmp_path, *KILL_RUN),
                     script=KILL_DRIVER + ["250", "SIGKILL", str(tmp_path / "checkpoints" / "200")])
    assert killed.returncode == -9
    assert not (tmp_path / "summary.json").exists()
    resumed = run_cli(*train_args(tmp_path, *KILL_RUN))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming mnist1d_mlp from checkpoint at step 200" in resumed.stderr
    assert_same_run(tmp_path, uninterrupted)


def test_sigkill_during_an_async_save_resumes_from_a_committed_checkpoint(tmp_path, uninterrupted):
    # Killed right after step 200's save starts: 200 may or may not be committed; either way the
    # rerun resumes from a complete checkpoint and ends identical.
    killed = run_cli(*train_args(tmp_path, *KILL_RUN),
                     script=KILL_DRIVER + ["200", "SIGKILL", str(tmp_path)])
    assert killed.returncode == -9
    resumed = run_cli(*train_args(tmp_path, *KILL_RUN))
    assert resumed.returncode == 0, resumed.stderr
    assert ("from checkpoint at step 200" in resumed.stderr
            or "from checkpoint at step 100" in resumed.stderr), resumed.stderr
    assert_same_run(tmp_path, uninterrupted)


def test_sigterm_saves_exits_zero_then_resumes_identically(tmp_path, uninterrupted):
    stopped = run_cli(*train_args(tmp_path, *KILL_RUN),
                      script=KILL_DRIVER + ["250", "SIGTERM", str(tmp_path / "checkpoints" / "200")])
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped by SIGTERM at step 250" in stopped.stderr
    assert (tmp_path / "checkpoints" / "250").is_dir()
    resumed = run_cli(*train_args(tmp_path, *KILL_RUN))
    assert resumed.returncode == 0, resumed.stderr
    assert "from checkpoint at step 250" in resumed.stderr
    assert_same_run(tmp_path, uninterrupted)


def test_unreadable_latest_checkpoint_falls_back_to_previous(tmp_path, uninterrupted):
    workdir = tmp_path / "run"
    shutil.copytree(uninterrupted, workdir)
    state_dir = workdir / "checkpoints" / "400" / "state"
    for path in state_dir.rglob("*"):
        if path.is_file() and path.name != "_METADATA":
            path.write_bytes(b"corrupt")
    evaluated = run_cli("eval", "--config", MLP_CONFIG, "--workdir", str(workdir), *KILL_RUN)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "checkpoint" in evaluated.stderr and "unreadable" in evaluated.stderr
    assert json.loads(evaluated.stdout)["step"] == 300
    resumed = run_cli(*train_args(workdir, *KILL_RUN))
    assert resumed.returncode == 0, resumed.stderr
    assert "from checkpoint at step 300" in resumed.stderr
    assert (workdir / "checkpoints.unreadable" / "400").is_dir()  # Kept, never deleted.
    assert_same_run(workdir, uninterrupted)

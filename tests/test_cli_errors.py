"""Bad input ends with exactly one line on stderr, `dlx: error: ...`, exit code 2, no traceback."""

import json

from conftest import MLP_CONFIG, run_cli, train_args

SHORT = ("--config.train.steps=200", "--config.train.log_every=50", "--config.train.eval_every=100",
         "--config.train.checkpoint_every=100")


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("dlx: error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_unknown_key_lists_close_keys(tmp_path):
    result = run_cli(*train_args(tmp_path, "--config.train.batchsize=10"))
    assert_one_line_error(result, "unknown config key 'train.batchsize'", "train.batch_size")


def test_wrong_type(tmp_path):
    result = run_cli(*train_args(tmp_path, "--config.train.batch_size=ten"))
    assert_one_line_error(result, "--config.train.batch_size=ten", "expected an int")


def test_missing_config_file(tmp_path):
    result = run_cli(*train_args(tmp_path, config=str(tmp_path / "missing.py")))
    assert_one_line_error(result, "config file not found", "missing.py")


def test_batch_not_divisible_by_devices(tmp_path):
    result = run_cli(*train_args(tmp_path), devices=8)
    assert_one_line_error(result, "train.batch_size=100 is not divisible by the 8 devices")


def test_batch_not_divisible_into_micro_batches(tmp_path):
    result = run_cli(*train_args(tmp_path, "--config.optim.accumulate_steps=3"))
    assert_one_line_error(result, "not divisible by the 1 devices x optim.accumulate_steps=3")


def test_workdir_of_another_experiment(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"name": "other_experiment"}))
    result = run_cli(*train_args(tmp_path))
    assert_one_line_error(result, "holds experiment 'other_experiment'", "another --workdir")


def test_eval_without_checkpoints(tmp_path):
    result = run_cli("eval", "--config", MLP_CONFIG, "--workdir", str(tmp_path))
    assert_one_line_error(result, "no checkpoints in")


def test_nan_loss_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    assert run_cli(*train_args(tmp_path, *SHORT)).returncode == 0
    result = run_cli(*train_args(tmp_path, *SHORT[1:], "--config.train.steps=400",
                                 "--config.optim.lr=1e30"))
    line = assert_one_line_error(result, "non-finite training loss", "last good checkpoint is step 200")
    bad_step = int(line.split(" at step ")[1].split(";")[0])
    assert 200 < bad_step <= 210  # Stopped within a step of the divergence, not at a log boundary.
    evaluated = run_cli("eval", "--config", MLP_CONFIG, "--workdir", str(tmp_path))
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["step"] == 200


def test_resume_with_another_optimiser_is_refused_and_keeps_checkpoints(tmp_path):
    assert run_cli(*train_args(tmp_path, *SHORT)).returncode == 0
    result = run_cli(*train_args(tmp_path, *SHORT, "--config.optim.name=sgd"))
    assert_one_line_error(result, "holds a different train state", "optimiser changed")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == \
        ["100", "200"]


def test_list_shows_experiments():
    result = run_cli("list")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == sorted(names) and {"mnist1d_mlp", "xor_mlp", "init_symmetry"} <= set(names)
    assert "MNIST-1D" in result.stdout

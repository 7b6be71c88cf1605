"""Config loading, typed command-line overrides and validation errors."""

import pytest

from dlx import config as config_lib
from dlx.errors import DlxError

from conftest import MLP_CONFIG


def test_load_names_config_after_file():
    config = config_lib.load(MLP_CONFIG)
    assert config.name == "mnist1d_mlp"
    for key in ("seed", "model.name", "data.name", "optim.name", "optim.lr", "optim.schedule",
                "optim.weight_decay", "optim.clip", "train.steps", "train.batch_size",
                "train.eval_every", "train.log_every", "train.checkpoint_every",
                "train.keep_checkpoints", "train.parallel"):
        assert key in config_lib.flat_keys(config)


def test_load_by_experiment_name():
    assert config_lib.load("mnist1d_mlp").train.steps == 6000


def test_overrides_are_typed_like_the_field():
    config = config_lib.build(MLP_CONFIG, ["--config.train.steps=7", "--config.optim.lr", "3e-4",
                                           "--config.model.batchnorm=true",
                                           "--config.model.features=(8, 4)"])
    assert config.train.steps == 7 and isinstance(config.train.steps, int)
    assert config.optim.lr == pytest.approx(3e-4)
    assert config.model.batchnorm is True
    assert tuple(config.model.features) == (8, 4)


def test_float_field_accepts_int_text():
    config = config_lib.build(MLP_CONFIG, ["--config.optim.lr=1"])
    assert isinstance(config.optim.lr, float) and config.optim.lr == 1.0


@pytest.mark.parametrize("override, fragment", [
    ("--config.train.step=5", "did you mean: train.steps"),
    ("--config.optim.lrr=0.1", "did you mean: optim.lr"),
    ("--config.nothing_like_it=1", "valid keys:"),
    ("--config.train.steps=1.5", "expected an int"),
    ("--config.model.batchnorm=maybe", "expected a bool"),
    ("--config.optim.lr=fast", "expected a float"),
    ("--config.model.features=5", "expected a tuple"),
    ("--config.train=5", "is a group"),
    ("--config.train.parallel=pjit", "train.parallel must be one of jit, pmap"),
    ("--config.train.steps=0", "train.steps must be a positive int"),
    ("--config.optim.lr=-1", "optim.lr must be > 0"),
    ("--confg.train.steps=5", "unrecognised argument"),
    ("--config.optim.accumulate_steps=0", "optim.accumulate_steps must be a positive int"),
    ("--config.train.eval_splits=dev", "expected a comma-separated subset of train, val, test"),
    ("--config.train.early_stopping.metric=eval_test_acc", "is not an evaluated metric"),
    ("--config.train.early_stopping.patience=0", "patience must be a positive int"),
])
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(DlxError, match=None) as info:
        config_lib.build(MLP_CONFIG, [override])
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_file_lists_experiments(tmp_path):
    with pytest.raises(DlxError, match="config file not found.*mnist1d_mlp"):
        config_lib.load(str(tmp_path / "nope.py"))


def test_file_without_get_config(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(DlxError, match="defines no get_config"):
        config_lib.load(str(path))


def test_broken_file_is_one_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import does_not_exist_anywhere\n")
    with pytest.raises(DlxError, match="cannot import config file.*ModuleNotFoundError"):
        config_lib.load(str(path))


def test_config_is_locked_after_build():
    config = config_lib.build(MLP_CONFIG, [])
    with pytest.raises(AttributeError):
        config.train.new_key = 1


def test_every_experiment_has_a_description():
    files = config_lib.experiment_files()
    assert "mnist1d_mlp" in files
    for path in files.values():
        assert not config_lib.describe(path).startswith("(")


def test_config_without_common_keys_is_refused(tmp_path):
    path = tmp_path / "bare.py"
    path.write_text("import ml_collections\n"
                    "def get_config():\n"
                    "    return ml_collections.ConfigDict({'seed': 0})\n")
    with pytest.raises(DlxError, match="lacks required keys: .*model.name.*train.steps.*dlx.config.base"):
        config_lib.build(str(path), [])


def test_warmup_longer_than_training():
    with pytest.raises(DlxError, match="optim.warmup_steps=10 must be below train.steps=5"):
        config_lib.build(MLP_CONFIG, ["--config.optim.warmup_steps=10", "--config.train.steps=5"])


def test_model_missing_a_key_is_one_line():
    from dlx import nn as nn_lib
    config = config_lib.load(MLP_CONFIG)
    del config.model["dropout"]
    with pytest.raises(DlxError, match="model.name=.mlp. needs the key model.dropout, which the config lacks"):
        nn_lib.build(config.model, 10)


def test_sweep_run_settings_are_applied_then_overridden():
    config = config_lib.build(MLP_CONFIG, ["--config.optim.lr=0.5"],
                              run=("fast", {"optim.name": "sgd", "optim.lr": 1, "seed": 3}))
    assert config.name == "mnist1d_mlp/fast"
    assert config.optim.name == "sgd" and config.seed == 3
    assert config.optim.lr == 0.5  # The command line wins over the run's setting.


@pytest.mark.parametrize("settings, fragment", [
    ({"optim.lr": "fast"}, "optim.lr='fast' is a str, expected a float"),
    ({"optim.lrr": 0.1}, "did you mean: optim.lr"),
])
def test_bad_sweep_setting_names_the_key(settings, fragment):
    with pytest.raises(DlxError) as info:
        config_lib.build(MLP_CONFIG, [], run=("bad", settings))
    assert fragment in str(info.value)


def test_experiments_define_well_formed_sweeps():
    for name in config_lib.experiment_files():
        runs = config_lib.sweep(name)
        for run in (runs or {None: {}}).items():
            config_lib.build(name, [], run=run if runs else None)

"""jit over 8 emulated devices, pmap over 8 and jit on 1 device give the same params after 20 steps:
the MLP with BatchNorm and gradient accumulation, and the SimpleCNN with BatchNorm."""

import json

import pytest

from conftest import FAST_COMPILE, REPO, run_cli

STEPS = ("--config.train.steps=20", "--config.train.batch_size=96", "--config.train.log_every=5",
         "--config.train.eval_every=20", "--config.train.checkpoint_every=20")


# SGD, because Adam turns float-rounding noise in near-zero gradients into full-size steps; and
# 5 steps, because on digits' flat backgrounds max-pool windows nearly tie, so after ~20 steps
# rounding differences between batch splits flip some argmaxes: the runs drift 1e-5 to 1e-3.
CNN_BATCHNORM = ("--config.model.batchnorm=true", "--config.model.dropout=0.0",
                 "--config.optim.name=sgd", "--config.optim.lr=0.01", "--config.model.hidden=64",
                 "--config.train.steps=5", "--config.train.eval_every=5",
                 "--config.train.checkpoint_every=5")


# The MLP with BatchNorm and 4 accumulated micro-batches: batch statistics kept in sync across
# devices and carried from one micro-batch to the next (the plain MLP, and accumulation without
# BatchNorm, are special cases, not run apart). The MLP compiles faster at XLA's lowest
# optimisation level; convolutions would run much slower.
@pytest.mark.parametrize("experiment, extra, xla_flags", [
    ("mnist1d_mlp", ("--config.model.batchnorm=true", "--config.optim.accumulate_steps=4"),
     FAST_COMPILE),
    ("digits_cnn", CNN_BATCHNORM, "")],
    ids=["mlp_batchnorm_accumulate4", "cnn_batchnorm"])
@pytest.mark.slow(30)
def test_jit8_pmap8_and_one_device_agree(tmp_path, experiment, extra, xla_flags):
    result = run_cli(str(tmp_path), experiment, *STEPS, *extra, devices=8, xla_flags=xla_flags,
                     script=[str(REPO / "tests" / "equivalence_driver.py")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8
    assert set(report["max_abs_diff"]) == {"jit_1", "jit_8", "pmap_8"}

"""jit over 8 emulated devices, pmap over 8 and jit on 1 device give the same params after 20 steps,
with and without BatchNorm and gradient accumulation."""

import json

import pytest

from conftest import REPO, run_cli

STEPS = ("--config.train.steps=20", "--config.train.batch_size=96", "--config.train.log_every=5",
         "--config.train.eval_every=20", "--config.train.checkpoint_every=20")


@pytest.mark.parametrize("extra", [(), ("--config.model.batchnorm=true",),
                                   ("--config.optim.accumulate_steps=4",)],
                         ids=["mlp", "mlp_batchnorm", "mlp_accumulate4"])
def test_jit8_pmap8_and_one_device_agree(tmp_path, extra):
    result = run_cli(str(tmp_path), *STEPS, *extra, devices=8,
                     script=[str(REPO / "tests" / "equivalence_driver.py")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8
    assert set(report["max_abs_diff"]) == {"jit_1", "jit_8", "pmap_8"}

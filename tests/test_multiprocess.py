"""Two processes on localhost (`launch/local_multiprocess.sh`, jax.distributed with a 127.0.0.1
coordinator, 4 emulated CPU devices each) train like one process with 8 devices; killing one
process stops the run, and rerunning resumes from the last checkpoint to the same result. (The
tiny BERT sharded over two processes is checked in tests/test_sharding.py.)"""

import json

import numpy as np

from conftest import FAST_COMPILE, REPO, launch, run_cli, train_args, train_losses

KILL_DRIVER = str(REPO / "tests" / "kill_driver.py")
# Short enough that the float-rounding differences of the cross-process sums stay at 1e-8
# (Adam on this MLP amplifies them into visible drift after ~250 steps).
MLP_RUN = ("--config.train.steps=100", "--config.train.log_every=10",
           "--config.train.eval_every=50", "--config.train.checkpoint_every=50",
           "--config.train.batch_size=96")
DISTRIBUTED = ("--config.train.distributed=auto",)


def summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def assert_same_result(got: dict, want: dict, rtol: float) -> None:
    assert got["final_step"] == want["final_step"] and got["devices"] == want["devices"] == 8
    np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=rtol)
    for key, value in want["eval"]["test"].items():
        np.testing.assert_allclose(got["eval"]["test"][key], value, rtol=rtol, err_msg=key)


def test_two_processes_killed_and_resumed_equal_one_process(tmp_path):
    one = run_cli(*train_args(tmp_path / "one", *MLP_RUN), devices=8, xla_flags=FAST_COMPILE)
    assert one.returncode == 0, one.stderr[-3000:]
    workdir = tmp_path / "two"
    args = train_args(workdir, *MLP_RUN, *DISTRIBUTED)
    killed = launch(KILL_DRIVER, "70", "SIGKILL", str(workdir / "checkpoints" / "50"), *args,
                    DLX_KILL_ONLY_PROCESS="1")
    assert killed.returncode != 0, killed.stderr[-3000:]
    assert "process 1 (pid" in killed.stderr and "stopping the others" in killed.stderr
    assert not (workdir / "summary.json").exists()
    resumed = launch("-m", "dlx.cli", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming mnist1d_mlp from checkpoint at step 50" in resumed.stderr
    assert_same_result(summary(resumed.stdout), summary(one.stdout), rtol=1e-5)
    np.testing.assert_allclose(train_losses(workdir), train_losses(tmp_path / "one"), rtol=1e-5)
    assert json.loads((workdir / "summary.json").read_text())["final_step"] == 100


"""Meshes and sharding rules (`dlx.train.sharding`), and one tiny BERT trained under data
parallelism, FSDP and tensor parallelism on 8 emulated devices and by two processes of 4
(`launch/local_multiprocess.sh`, jax.distributed with a 127.0.0.1 coordinator): the same loss
curve as one device, parameters really sharded, an 8-device checkpoint continued on 4 devices
and on 1 as if never stopped, and a two-process run with one process killed resumed to the same
curve."""

import json

import numpy as np
import pytest
from jax.sharding import PartitionSpec

from conftest import FAST_COMPILE, REPO, launch, run_cli, train_losses
from sharding_driver import MESHES, TINY
from dlx.errors import DlxError
from dlx.train import sharding

SIZES = {"data": 2, "fsdp": 4, "model": 1}
KILL_DRIVER = str(REPO / "tests" / "kill_driver.py")


@pytest.mark.parametrize("mesh, devices, expected", [
    ({"data": -1, "fsdp": 1, "model": 1}, 8, {"data": 8, "fsdp": 1, "model": 1}),
    ({"data": 2, "fsdp": -1, "model": 1}, 8, {"data": 2, "fsdp": 4, "model": 1}),
    ({"data": 1, "fsdp": 2, "model": 2}, 4, {"data": 1, "fsdp": 2, "model": 2})])
def test_mesh_shape_fills_the_free_axis(mesh, devices, expected):
    assert sharding.mesh_shape(mesh, devices) == expected


@pytest.mark.parametrize("mesh, devices, fragment", [
    ({"data": -1, "fsdp": -1}, 8, "at most one -1"),
    ({"data": 3, "fsdp": -1}, 8, "not divisible by 3"),
    ({"data": 2, "fsdp": 2, "model": 1}, 8, "needs 4 devices"),
    ({"data": 0}, 8, "sizes must be >= 1"),
    ({"pipeline": 2}, 8, "unknown axes ['pipeline']")])
def test_bad_meshes_are_one_line_errors(mesh, devices, fragment):
    with pytest.raises(DlxError) as error:
        sharding.mesh_shape(mesh, devices)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_fsdp_splits_the_largest_divisible_dimension_of_big_leaves_only():
    spec = lambda path, shape, **sizes: sharding.leaf_spec(path, shape, {**SIZES, **sizes}, 1024)
    assert spec("params/embedding", (1002, 64)) == PartitionSpec(None, "fsdp")  # 1002 % 4 != 0.
    assert spec("params/embedding", (1024, 64)) == PartitionSpec("fsdp", None)
    assert spec("params/norm/scale", (64,)) == PartitionSpec(None)  # Under fsdp_min_size.
    assert spec("step", ()) == PartitionSpec()
    assert spec("params/x", (1002, 63)) == PartitionSpec(None, None)  # Nothing divides.


def test_tensor_parallel_pairs_split_heads_then_fsdp_takes_the_other_dimension():
    spec = lambda path, shape: sharding.leaf_spec(path, shape, {"data": 1, "fsdp": 2,
                                                               "model": 4}, 1024)
    layer = "params/bert/encoder/layer_0"
    assert spec(f"{layer}/attention/query/kernel", (64, 64)) == PartitionSpec("fsdp", "model")
    assert spec(f"{layer}/attention/query/bias", (64,)) == PartitionSpec("model")
    assert spec(f"{layer}/attention/out/kernel", (64, 64)) == PartitionSpec("model", "fsdp")
    assert spec(f"{layer}/mlp/intermediate/kernel", (64, 256)) == PartitionSpec("fsdp", "model")
    assert spec(f"{layer}/mlp/output/kernel", (256, 64)) == PartitionSpec("model", "fsdp")
    assert spec(f"{layer}/mlp/output/bias", (64,)) == PartitionSpec(None)
    # Adam's moments mirror the params' paths, so they are sharded alike.
    assert spec("opt_state/0/mu/bert/encoder/layer_0/mlp/output/kernel",
                (256, 64)) == PartitionSpec("model", "fsdp")


@pytest.mark.slow(120)
def test_any_mesh_and_two_processes_give_the_one_device_curve_and_resume_on_fewer_devices(
        tmp_path):
    result = run_cli(str(tmp_path / "driver"), devices=8, timeout=600, xla_flags=FAST_COMPILE,
                     script=[str(REPO / "tests" / "sharding_driver.py")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8
    curves = report["curves"]
    reference = curves["one_device"]
    assert len(reference) == 20 and reference[-1] < reference[0]
    for name, curve in curves.items():
        np.testing.assert_allclose(curve, reference, rtol=1e-4, err_msg=name)
    specs = report["specs"]
    assert specs["fsdp8"] == {"intermediate": [None, "fsdp"], "word_embeddings": ["fsdp", None]}
    assert specs["data2_fsdp4"] == specs["fsdp8"]
    assert specs["data2_model4"]["intermediate"] == [None, "model"]
    # The FSDP state is initialised in place, shard by shard, as one program (no device ever
    # holds all of it), to the values of the op-by-op initialisation up to float rounding.
    init = report["sharded_init"]
    assert init["traced"] == [True] and init["one_device_traced"] == [False]
    assert all(init["sharded_like_training"])
    assert init["max_abs_diff"] < 1e-6
    restored = report["restored"]
    for devices in ("4", "1"):
        np.testing.assert_allclose(restored[devices], curves["fsdp8"][10:], rtol=1e-4,
                                   err_msg=f"restored on {devices}")
    # The data(2) x fsdp(4) mesh over two processes of 4 devices each (jax.distributed): process
    # 1 is killed at step 15, which stops the run; the rerun resumes from the step-10 checkpoint
    # to the one-process curve.
    workdir = tmp_path / "two_processes"
    args = ("-m", "dlx.cli", "train", "--config", str(REPO / "experiments" / "bert_mlm_tiny.py"),
            "--workdir", str(workdir), *TINY, *MESHES["data2_fsdp4"],
            "--config.train.distributed=auto")
    killed = launch(KILL_DRIVER, "15", "SIGKILL", str(workdir / "checkpoints" / "10"), *args[2:],
                    DLX_KILL_ONLY_PROCESS="1")
    assert killed.returncode != 0, killed.stderr[-3000:]
    assert "process 1 (pid" in killed.stderr and "stopping the others" in killed.stderr
    assert not (workdir / "summary.json").exists()
    resumed = launch(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "from checkpoint at step 10" in resumed.stderr
    np.testing.assert_allclose(train_losses(workdir), curves["data2_fsdp4"], rtol=1e-4)
    assert json.loads((workdir / "summary.json").read_text())["final_step"] == 20

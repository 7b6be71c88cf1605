"""Trains a tiny BERT under several meshes of 8 emulated devices and restores across topologies.

`sharding_driver.py WORKDIR`; prints one JSON line with, per mesh, the train-loss curve and the
PartitionSpec of two kernels, the losses of steps 11-20 after restoring the 8-device (FSDP)
step-10 checkpoint on 4 and on 1 device, and how the FSDP and one-device states were initialised.
"""

import json
import pathlib
import shutil
import sys

import jax
import numpy as np

from dlx import config as config_lib
from dlx.train import loop, parallel

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY = ["--config.data.corpus=gensim_lee", "--config.data.vocab_size=1000",
        "--config.model.hidden_size=64", "--config.model.num_heads=4",
        "--config.model.num_layers=1", "--config.model.intermediate_size=256",
        "--config.train.fsdp_min_size=1024",
        "--config.train.batch_size=16", "--config.train.eval_batch_size=64",
        "--config.optim.schedule=constant", "--config.optim.warmup_steps=0",
        "--config.train.log_every=1", "--config.train.steps=20", "--config.train.eval_every=20",
        "--config.train.checkpoint_every=10"]
# Pure data parallelism (the default mesh) is left to test_parallel.py: the data axis is here in
# data2_fsdp4 and data2_model4.
MESHES = {"one_device": ["--config.train.devices=1"],
          "fsdp8": ["--config.train.mesh.data=1", "--config.train.mesh.fsdp=-1"],
          "data2_fsdp4": ["--config.train.mesh.data=2", "--config.train.mesh.fsdp=4"],
          "data2_model4": ["--config.train.mesh.data=2", "--config.train.mesh.model=4"]}
KERNELS = {"intermediate": ("bert", "encoder", "layer_0", "mlp", "intermediate", "kernel"),
           "word_embeddings": ("bert", "embeddings", "word_embeddings", "embedding")}


def train(workdir: pathlib.Path, extra: list[str]) -> tuple[list[float], dict]:
    """(train losses of steps 1-20 in metrics.jsonl, PartitionSpecs of KERNELS); checkpoints at
    steps 10 and 20."""
    config = config_lib.build(str(REPO / "experiments" / "bert_mlm_tiny.py"), TINY + extra)
    loop.train_and_evaluate(config, workdir)
    _, _, state = loop.restore_latest(config, workdir)
    specs = {}
    for name, path in KERNELS.items():
        leaf = state.params
        for key in path:
            leaf = leaf[key]
        specs[name] = list(leaf.sharding.spec)
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [row["train_loss"] for row in rows if "train_loss" in row], specs


class InitRecorder:
    """Wraps `JitRunner.init_state` to record, per run, whether `init` was traced (one jitted
    program writing each device's shards) or ran op by op, the initial params on the host, and
    whether every state leaf landed on its training sharding."""

    def __init__(self):
        self.runs: dict[str, dict] = {}
        self.name = ""
        self.original = parallel.JitRunner.init_state
        parallel.JitRunner.init_state = lambda runner, init, *args: self.init_state(
            runner, init, *args)

    def init_state(self, runner, init, *args):
        traced = []

        def recorded(*init_args):
            state = init(*init_args)
            traced.append(isinstance(state.step, jax.core.Tracer))
            return state

        state = self.original(runner, recorded, *args)
        self.runs[self.name] = {
            "traced": traced, "params": jax.device_get(state.params),
            "sharded_like_training": jax.tree.leaves(jax.tree.map(
                lambda leaf, target: leaf.sharding == target, state, runner.state_sharding))}
        return state

    def report(self) -> dict:
        """How the fsdp(8) run initialised its state, and how far its initial params are from
        the one-device run's op-by-op initialisation."""
        fsdp, single = self.runs["fsdp8"], self.runs["one_device"]
        diffs = jax.tree.map(lambda a, b: float(abs(np.asarray(a, np.float64) - b).max()),
                             fsdp["params"], single["params"])
        return {"traced": fsdp["traced"], "one_device_traced": single["traced"],
                "max_abs_diff": max(jax.tree.leaves(diffs)),
                "sharded_like_training": fsdp["sharded_like_training"]}


def main() -> None:
    root = pathlib.Path(sys.argv[1])
    report = {"devices": jax.local_device_count(), "curves": {}, "specs": {}, "restored": {}}
    inits = InitRecorder()
    for name, extra in MESHES.items():
        # Only the FSDP run's step-10 checkpoint is restored below; the others save at the end.
        if name != "fsdp8":
            extra = extra + ["--config.train.checkpoint_every=20"]
        inits.name = name
        report["curves"][name], report["specs"][name] = train(root / name, extra)
    report["sharded_init"] = inits.report()
    # The FSDP run's step-10 checkpoint, continued on 4 devices and on 1.
    for devices in (4, 1):
        workdir = root / f"restored_on_{devices}"
        shutil.copytree(root / "fsdp8", workdir)
        shutil.rmtree(workdir / "checkpoints" / "20")
        mesh = ["--config.train.mesh.data=1", "--config.train.mesh.fsdp=-1"]
        curve, _ = train(
            workdir, [f"--config.train.devices={devices}"] + (mesh if devices > 1 else []))
        report["restored"][str(devices)] = curve[10:]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

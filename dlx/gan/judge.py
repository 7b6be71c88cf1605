"""The digits judge: experiments/digits_cnn.py's SimpleCNN, trained once and cached on disk.

The judge is trained by the dlx trainer itself, on one device, on the digits train split (the
GAN's own `data.*`, so the same split) and saved under `<data cache>/gan_judge/<key>/`, the key
hashing every setting of its config. Training is deterministic on a given machine, so a cache
deleted and rebuilt gives the same judge, and every run (resumed or not) scores its samples with
the same fixed classifier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
import shutil
import sys
import tempfile
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections

from dlx.errors import DlxError

EXPERIMENT = "digits_cnn"  # The judge is this experiment's model and recipe.
PARAMS_FILE = "params.msgpack"
INFO_FILE = "judge.json"


@dataclasses.dataclass(frozen=True, eq=False)
class Judge:
    """A fixed classifier of (B, 8, 8) images and its accuracy on the real test digits."""
    model: Any
    params: Any
    test_accuracy: float

    def probabilities(self, x_BHW: jax.Array) -> jax.Array:
        """(B, H, W) images in [0, 1] -> (B, C) class probabilities."""
        logits_BC = self.model.apply({"params": self.params}, x_BHW, train=False)
        return jax.nn.softmax(logits_BC.astype(jnp.float32), axis=-1)


def config(data_config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
    """The judge's training config: `digits_cnn` for `steps` steps on the data of `data_config`."""
    from dlx import config as config_lib
    if not (isinstance(steps, int) and steps > 0):
        raise DlxError(f"model.judge_steps must be a positive int, got {steps!r}")
    judge = config_lib.load(EXPERIMENT)
    judge.name = f"{EXPERIMENT}_judge"
    judge.data = ml_collections.ConfigDict(data_config.to_dict())
    judge.train.steps = steps
    judge.train.eval_every = steps
    judge.train.checkpoint_every = steps
    judge.train.log_every = min(judge.train.log_every, steps)
    judge.train.eval_splits = "test"
    judge.train.keep_checkpoints = 1
    # One device, so the judge is the same function whatever devices the GAN's run has.
    judge.train.devices = 1
    judge.train.parallel = "jit"
    config_lib.validate(judge)
    return judge


def cache_key(judge_config: ml_collections.ConfigDict) -> str:
    """16 hex digits of the SHA-256 of the config, without `data.cache_dir` (where, not what)."""
    settings = json.loads(judge_config.to_json())
    settings["data"].pop("cache_dir", None)
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model(judge_config: ml_collections.ConfigDict, num_classes: int):
    from dlx import nn as nn_lib
    return nn_lib.build(judge_config.model, num_classes)


def _train(judge_config: ml_collections.ConfigDict, directory: pathlib.Path) -> None:
    """Trains the judge in a scratch workdir beside `directory`, then moves its params and info
    there in one rename, so a reader never sees a half-written judge."""
    from dlx.train import loop
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".train-"))
    try:
        print(f"training the GAN's digits judge ({judge_config.train.steps} steps); it is "
              f"cached in {directory}", file=sys.stderr, flush=True)
        summary = loop.train_and_evaluate(judge_config, scratch / "run")
        if summary is None:
            raise DlxError("training the digits judge was stopped; rerun to train it again")
        run, _, state = loop.restore_latest(judge_config, scratch / "run")
        ready = scratch / "judge"
        save(ready, jax.device_get(state.params), summary["eval"]["test"]["accuracy"],
             run.splits.num_classes, judge_config)
        try:
            ready.rename(directory)
        except OSError:
            if not (directory / INFO_FILE).exists():  # Not a concurrent run's finished judge.
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def save(directory: pathlib.Path, params: Any, test_accuracy: float, num_classes: int,
         judge_config: ml_collections.ConfigDict) -> None:
    """Writes a judge's params and `judge.json` (its accuracy, classes and config)."""
    from dlx.train import outputs
    outputs.write_atomic(directory / PARAMS_FILE, flax.serialization.msgpack_serialize(params))
    outputs.write_json(directory / INFO_FILE, {
        "test_accuracy": test_accuracy, "num_classes": num_classes,
        "config": json.loads(judge_config.to_json())})


def directory_of(data_config: ml_collections.ConfigDict,
                 judge_config: ml_collections.ConfigDict) -> pathlib.Path:
    """Where the judge of `judge_config` is cached: `<data cache>/gan_judge/<cache_key>`."""
    from dlx import data as data_lib
    return data_lib.cache_dir(data_config) / "gan_judge" / cache_key(judge_config)


def load_or_train(data_config: ml_collections.ConfigDict, steps: int) -> Judge:
    """The judge for `data_config` trained for `steps` steps: read from the data cache, or
    trained and cached there first."""
    judge_config = config(data_config, steps)
    directory = directory_of(data_config, judge_config)
    if not (directory / INFO_FILE).exists():
        _train(judge_config, directory)
    info = json.loads((directory / INFO_FILE).read_text())
    params = flax.serialization.msgpack_restore((directory / PARAMS_FILE).read_bytes())
    return Judge(_model(judge_config, info["num_classes"]), jax.tree.map(jnp.asarray, params),
                 float(info["test_accuracy"]))


def quality_sums(probabilities_BC: jax.Array) -> dict[str, jax.Array]:
    """Sums over samples: `samples`, `judge_confidence` (of the max probability) and
    `judge_class_c` (how many samples the judge assigns to class c)."""
    num_classes = probabilities_BC.shape[-1]
    counts_C = jax.nn.one_hot(probabilities_BC.argmax(-1), num_classes).sum(0)
    return {"samples": jnp.asarray(probabilities_BC.shape[0], jnp.float32),
            "judge_confidence": probabilities_BC.max(-1).sum(),
            **{f"judge_class_{c}": counts_C[c] for c in range(num_classes)}}


def quality_means(sums: dict[str, float]) -> dict[str, float]:
    """Host-side: `judge_confidence` (mean max probability), `judge_classes` (classes predicted
    at least once) and `judge_entropy` (nats of the predicted-class histogram; log C is uniform)."""
    samples = max(float(sums["samples"]), 1.0)
    counts = [float(value) for key, value in sums.items() if key.startswith("judge_class_")]
    total = max(sum(counts), 1.0)
    entropy = sum(-n / total * math.log(n / total) for n in counts if n > 0)
    return {"judge_confidence": float(sums["judge_confidence"]) / samples,
            "judge_classes": float(sum(n > 0 for n in counts)), "judge_entropy": entropy}

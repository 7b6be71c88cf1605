"""Trains one config as jit on all devices, pmap on all devices and jit on 1 device; prints max diffs.

`equivalence_driver.py WORKDIR EXPERIMENT [--config.KEY=VALUE ...]`, run with 8 emulated CPU
devices; EXPERIMENT names a file in experiments/ (e.g. mnist1d_mlp).
Prints one JSON line: {"devices", "modes": {...}, "max_rel_diff": {mode: float}, "max_abs_diff": ...}.
"""

import json
import pathlib
import sys

import jax
import numpy as np

from dlx import config as config_lib
from dlx.train import loop

REPO = pathlib.Path(__file__).resolve().parent.parent


def final_params(workdir: pathlib.Path, experiment: str,
                 overrides: list[str]) -> list[np.ndarray]:
    config = config_lib.build(str(REPO / "experiments" / f"{experiment}.py"), overrides)
    loop.train_and_evaluate(config, workdir)
    _, _, state = loop.restore_latest(config, workdir)
    host = jax.device_get(unreplicated(state, config.train.parallel))
    return [np.asarray(x) for x in jax.tree.leaves((host.params, host.batch_stats))]


def unreplicated(state, parallel: str):
    return jax.tree.map(lambda x: x[0], state) if parallel == "pmap" else state


def main() -> None:
    root, experiment, overrides = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    n = jax.local_device_count()
    modes = {"jit_1": ["--config.train.parallel=jit", "--config.train.devices=1"],
             f"jit_{n}": ["--config.train.parallel=jit", "--config.train.devices=0"],
             f"pmap_{n}": ["--config.train.parallel=pmap", "--config.train.devices=0"]}
    params = {name: final_params(root / name, experiment, overrides + extra)
              for name, extra in modes.items()}
    reference = params["jit_1"]
    rel, abs_ = {}, {}
    for name, leaves in params.items():
        diffs = [np.abs(a - b) for a, b in zip(leaves, reference)]
        abs_[name] = max(float(d.max()) for d in diffs)
        rel[name] = max(float((d / (np.abs(b) + 1e-30)).max()) for d, b in zip(diffs, reference))
        np.testing.assert_allclose(np.concatenate([a.ravel() for a in leaves]),
                                   np.concatenate([b.ravel() for b in reference]), rtol=1e-5,
                                   atol=1e-6, err_msg=f"{name} differs from jit_1")
    print(json.dumps({"devices": n, "max_rel_diff": rel, "max_abs_diff": abs_}))


if __name__ == "__main__":
    main()

"""Why random init: the MNIST-1D MLP from zeros / constant / N(0, 0.01^2) / He / Xavier weights.

Zero or constant weights give every hidden unit the same gradient, so the units stay identical
(the `distinct_units` report counts them) and the network cannot learn; random init breaks the tie.
Run: dlx train --config experiments/init_symmetry.py --workdir runs/init_symmetry
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.train.reports = "distinct_units"
    return config


def get_sweep() -> dict[str, dict]:
    inits = {"zeros": "zeros", "constant": "constant:0.05", "normal_001": "normal:0.01",
             "he": "he_normal", "xavier": "xavier_normal"}
    return {name: {"model.kernel_init": spec} for name, spec in inits.items()}

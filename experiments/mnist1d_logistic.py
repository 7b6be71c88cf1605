"""Logistic regression (40-10, no hidden layer) on MNIST-1D, the paper recipe (paper: 32 %).

Same data, optimiser (Adam 1e-2), batch (100) and 6000 steps as mnist1d_mlp; only the hidden
layers are gone, so this is the linear baseline the MLP and CNN are measured against. Run:
dlx train --config experiments/mnist1d_logistic.py --workdir runs/mnist1d_logistic
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.model.features = ()
    return config

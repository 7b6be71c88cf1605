"""XOR with one hidden layer (2-8-2, tanh): the hidden units bend the boundary, 100 % accuracy.

Run: dlx train --config experiments/xor_mlp.py --workdir runs/xor_mlp
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("xor_perceptron.py")))
    config.model.features = (8,)
    config.model.activation = "tanh"
    return config

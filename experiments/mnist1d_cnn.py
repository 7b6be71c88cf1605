"""The paper's 1-D CNN (3 convs, 25 channels, 5,210 params) on MNIST-1D, paper recipe (paper: 94 %).

Same data, optimiser (Adam 1e-2), batch (100) and 6000 steps as mnist1d_mlp; the convolutions'
weight sharing and locality are what lift it far above the MLP. Run:
dlx train --config experiments/mnist1d_cnn.py --workdir runs/mnist1d_cnn
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.model = ml_collections.ConfigDict({"name": "conv1d", "channels": 25})
    return config

"""The paper's bidirectional GRU (hidden 6, head on all 40 steps) on MNIST-1D (paper: 91 %).

As in the MNIST-1D notebook: `torch.nn.GRU(1, 6, bidirectional=True)` reads the 40 samples one
per step, and a linear layer maps all 40 × 12 outputs, flattened, to the 10 classes; weights
start from torch's default init, as in the paper's notebook (`model.weight_init`). Same data,
optimiser (Adam 1e-2), batch (100) and 6000 steps as mnist1d_mlp. Run:
dlx train --config experiments/mnist1d_gru.py --workdir runs/mnist1d_gru
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.model = ml_collections.ConfigDict({
        "name": "rnn", "cell_type": "gru", "hidden_size": 6, "num_layers": 1,
        "bidirectional": True, "dropout": 0.0, "readout": "flatten",
        "weight_init": "torch"})  # As torch.nn.GRU/Linear; dlx's default init gave 88-92 %.
    return config

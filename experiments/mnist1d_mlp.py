"""MLP 40-100-100-10 on MNIST-1D, the paper recipe (Adam 1e-2, batch 100, 6000 steps; paper: 68 %).

Run: dlx train --config experiments/mnist1d_mlp.py --workdir runs/mnist1d_mlp
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "mnist1d"
    config.data.seed = 42  # The dataset's own generation seed (the paper's).
    config.data.num_samples = 5000  # 4000 train / 1000 test.

    config.model.name = "mlp"
    config.model.features = (100, 100)
    config.model.activation = "relu"
    config.model.dropout = 0.0
    config.model.batchnorm = False
    config.model.kernel_init = "lecun_normal"  # Flax's default; see dlx.nn.init for the others.
    config.model.bias_init = "zeros"

    config.optim.name = "adam"
    config.optim.lr = 1e-2

    config.train.steps = 6000
    config.train.batch_size = 100
    config.train.log_every = 100
    config.train.eval_every = 500
    config.train.checkpoint_every = 1000
    return config

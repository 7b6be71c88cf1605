"""SimpleCNN (conv-pool x2, dropout, dense 1000) on sklearn's 8x8 digits, Adam 1e-3 (>= 97 %).

1437 train / 360 test images, a stratified split fixed by data.seed. Run:
dlx train --config experiments/digits_cnn.py --workdir runs/digits_cnn
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "digits"
    config.data.seed = 0  # The train/test split's seed (stratified, 20 % test).

    config.model.name = "simple_cnn"
    config.model.batchnorm = False
    config.model.dropout = 0.25
    config.model.hidden = 1000

    config.optim.name = "adam"
    config.optim.lr = 1e-3

    config.train.steps = 600
    config.train.batch_size = 64
    config.train.eval_batch_size = 360
    config.train.log_every = 100
    config.train.eval_every = 200
    config.train.checkpoint_every = 600
    return config

"""XOR with a single-layer perceptron (linear layer + sigmoid/softmax output): stuck at <= 75 %.

No line separates {(0,1), (1,0)} from {(0,0), (1,1)}, so at most 3 of the 4 points can be right.
Run: dlx train --config experiments/xor_perceptron.py --workdir runs/xor_perceptron
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "xor"

    config.model.name = "mlp"
    config.model.features = ()  # No hidden layer: logits = x W + b.
    config.model.activation = "linear"
    config.model.dropout = 0.0
    config.model.batchnorm = False
    config.model.kernel_init = "lecun_normal"
    config.model.bias_init = "zeros"

    config.optim.name = "adam"
    config.optim.lr = 0.05

    config.train.steps = 1000
    config.train.batch_size = 4  # The whole data set each step: batch gradient descent.
    config.train.eval_batch_size = 4
    config.train.devices = 1
    config.train.log_every = 10
    config.train.eval_every = 50
    config.train.checkpoint_every = 500
    return config

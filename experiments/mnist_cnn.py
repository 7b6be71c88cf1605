"""SimpleCNN on full MNIST (60k train / 10k test) from the Hugging Face hub, random 2-pixel shifts.

Needs hub access for the first load (ylecun/mnist); the decoded pixels are then cached under the
dlx cache dir. Offline, point data.path at a local copy: a DatasetDict.save_to_disk directory, or
a directory or file load_dataset reads, with the hub's `image` and `label` columns and train and
test splits. Run:
dlx train --config experiments/mnist_cnn.py --workdir runs/mnist_cnn [--config.data.path=DIR]
"""

import ml_collections

from dlx.config import base


def get_config() -> ml_collections.ConfigDict:
    config = base()
    config.data.name = "mnist"
    config.data.path = ""  # Empty: the hub's ylecun/mnist.
    config.data.augment = "shift:2"

    config.model.name = "simple_cnn"
    config.model.batchnorm = False
    config.model.dropout = 0.25
    config.model.hidden = 1000

    config.optim.name = "adam"
    config.optim.lr = 1e-3

    config.train.steps = 6000  # About 13 epochs of 469 batches.
    config.train.batch_size = 128
    config.train.eval_batch_size = 1000
    config.train.log_every = 100
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    return config

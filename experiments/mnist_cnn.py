"""SimpleCNN on full MNIST (60k train / 10k test) from the Hugging Face hub, random 2-pixel shifts.

Needs hub access for the first load (ylecun/mnist); the decoded pixels are then cached under the
dlx cache dir. Offline, point data.path at a local copy: a DatasetDict.save_to_disk directory, or
a directory or file load_dataset reads, with the hub's `image` and `label` columns and train and
test splits. Run:
dlx train --config experiments/mnist_cnn.py --workdir runs/mnist_cnn [--config.data.path=DIR]
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    # The model and optimiser of digits_cnn (SimpleCNN, Adam 1e-3); data and schedule for MNIST.
    config = config_lib.load(str(pathlib.Path(__file__).with_name("digits_cnn.py")))
    config.data = config_lib.base().data
    config.data.name = "mnist"
    config.data.path = ""  # Empty: the hub's ylecun/mnist.
    config.data.augment = "shift:2"

    config.train.steps = 6000  # About 13 epochs of 469 batches.
    config.train.batch_size = 128
    config.train.eval_batch_size = 1000
    config.train.log_every = 100
    config.train.eval_every = 1000
    config.train.checkpoint_every = 1000
    return config

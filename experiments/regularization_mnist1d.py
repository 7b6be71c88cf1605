"""Regularisation on a deliberately small train set (1000 MNIST-1D examples): none vs L2 vs dropout
vs early stopping, reporting train and test accuracy so the gap is visible.

Early stopping watches the loss on 500 held-out validation examples (never the test set) and
restores the best checkpoint. Run:
dlx train --config experiments/regularization_mnist1d.py --workdir runs/regularization_mnist1d
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.data.train_size = 1000
    config.data.validation_size = 500
    config.train.eval_splits = "train,val,test"
    config.train.eval_every = 100
    return config


def get_sweep() -> dict[str, dict]:
    return {
        "none": {},
        "l2": {"optim.l2": 1e-3},
        "dropout": {"model.dropout": 0.5},
        "early_stopping": {"train.early_stopping.metric": "eval_val_loss",
                           "train.early_stopping.patience": 5},
    }

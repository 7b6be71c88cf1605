"""Optimisers on the MNIST-1D MLP: SGD, momentum, Nesterov, RMSProp, Adagrad, Adam, AdamW, and
batch vs mini-batch vs single-example SGD, all for the same number of updates (6000).

Learning rates are each method's usual default scale, not tuned per run.
Run: dlx train --config experiments/optimizers_mnist1d.py --workdir runs/optimizers_mnist1d
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.optim.weight_decay = 0.0
    return config


def get_sweep() -> dict[str, dict]:
    return {
        "sgd": {"optim.name": "sgd", "optim.lr": 0.1},
        "momentum": {"optim.name": "momentum", "optim.lr": 0.01, "optim.momentum": 0.9},
        "nesterov": {"optim.name": "nesterov", "optim.lr": 0.01, "optim.momentum": 0.9},
        "rmsprop": {"optim.name": "rmsprop", "optim.lr": 1e-3},
        "adagrad": {"optim.name": "adagrad", "optim.lr": 0.05},
        "adam": {"optim.name": "adam", "optim.lr": 1e-2},
        "adamw": {"optim.name": "adamw", "optim.lr": 1e-2, "optim.weight_decay": 1e-2},
        # Batch size: the whole train set per update, 100 examples, one example.
        "sgd_batch": {"optim.name": "sgd", "optim.lr": 0.1, "train.batch_size": 4000},
        "sgd_single": {"optim.name": "sgd", "optim.lr": 0.01, "train.batch_size": 1,
                       "train.devices": 1},
    }

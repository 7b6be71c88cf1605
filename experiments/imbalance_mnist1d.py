"""Class imbalance on MNIST-1D: classes 5-9 keep 5 % of their train rows (digits 0-4 all of
theirs; the test set is unchanged), then plain cross-entropy vs class-weighted cross-entropy vs
focal loss vs class-balanced batches, reporting test accuracy and macro-F1.

Run: dlx train --config experiments/imbalance_mnist1d.py --workdir runs/imbalance_mnist1d
"""

import pathlib

import ml_collections

from dlx import config as config_lib


def get_config() -> ml_collections.ConfigDict:
    config = config_lib.load(str(pathlib.Path(__file__).with_name("mnist1d_mlp.py")))
    config.data.imbalance = 0.05  # ~20 train rows for each of classes 5-9, ~400 for 0-4.
    # A small, L2-regularised MLP: one that cannot simply memorise the 20 rare examples, where
    # the class prior the loss learns decides the rare classes' predictions.
    config.model.features = (32,)
    config.optim.l2 = 1e-3
    config.train.steps = 3000
    config.train.eval_every = 500
    return config


def get_sweep() -> dict[str, dict]:
    return {
        "none": {},
        "class_weighted": {"train.class_weights": "balanced"},
        "focal": {"train.loss": "focal", "train.focal_gamma": 2.0},
        "balanced_sampling": {"data.sampling": "balanced"},
    }

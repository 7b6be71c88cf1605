"""Pure model definitions (flax.linen) and a builder from `config.model`."""

from __future__ import annotations

import flax.linen as nn
import ml_collections

from dlx.errors import DlxError, missing_key
from dlx.nn import activations, init
from dlx.nn.cnn import Conv1DNet, SimpleCNN
from dlx.nn.mlp import MLP
from dlx.nn.rnn import RNNClassifier


def _mlp(model_config: ml_collections.ConfigDict, num_outputs: int, axis_name: str | None) -> MLP:
    return MLP(features=tuple(model_config.features), num_outputs=num_outputs,
               activation=activations.get(model_config.activation), dropout=model_config.dropout,
               use_batchnorm=model_config.batchnorm, axis_name=axis_name,
               kernel_init=init.get(model_config.kernel_init),
               bias_init=init.get(model_config.bias_init))


def _conv1d(model_config: ml_collections.ConfigDict, num_outputs: int,
            axis_name: str | None) -> Conv1DNet:
    del axis_name  # No BatchNorm.
    return Conv1DNet(num_outputs=num_outputs, channels=model_config.channels)


def _simple_cnn(model_config: ml_collections.ConfigDict, num_outputs: int,
                axis_name: str | None) -> SimpleCNN:
    return SimpleCNN(num_outputs=num_outputs, use_batchnorm=model_config.batchnorm,
                     dropout=model_config.dropout, hidden=model_config.hidden, axis_name=axis_name)


def _rnn(model_config: ml_collections.ConfigDict, num_outputs: int,
         axis_name: str | None) -> RNNClassifier:
    del axis_name  # No BatchNorm.
    return RNNClassifier(cell_type=model_config.cell_type, hidden_size=model_config.hidden_size,
                         num_layers=model_config.num_layers,
                         bidirectional=model_config.bidirectional, num_outputs=num_outputs,
                         dropout=model_config.dropout, readout=model_config.readout,
                         weight_init=model_config.weight_init)


MODELS = {"mlp": _mlp, "conv1d": _conv1d, "simple_cnn": _simple_cnn, "rnn": _rnn}


def build(model_config: ml_collections.ConfigDict, num_outputs: int,
          axis_name: str | None = None) -> nn.Module:
    """The module named by `model.name`, with `axis_name` for cross-device BatchNorm under pmap."""
    if model_config.name not in MODELS:
        raise DlxError(f"model.name={model_config.name!r} is not a known model; "
                       f"expected one of: {', '.join(MODELS)}")
    try:
        return MODELS[model_config.name](model_config, num_outputs, axis_name)
    except AttributeError as e:  # ConfigDict raises AttributeError for a missing key.
        raise missing_key("model", model_config.name, e) from None

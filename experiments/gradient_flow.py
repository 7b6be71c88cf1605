"""Vanishing/exploding gradients through 100 steps: ‖∂loss/∂h_t‖ per time step for a plain tanh
RNN, an LSTM and a tanh RNN whose recurrent kernel is 4x larger, at initialisation (dlx default
init: orthogonal W_hh, LSTM forget bias 1; `--config.model.weight_init=torch` for torch's).

The loss reads the last hidden state; the plot (gradient_flow.png, log scale) shows the plain
RNN's gradient dying off going back in time, the large-init RNN's growing, and the LSTM keeping
its scale far longer (dlx.gradient_flow). Gradient clipping for training is `optim.clip`.
Run: dlx train --config experiments/gradient_flow.py --workdir runs/gradient_flow
"""

import ml_collections

from dlx.gradient_flow import base


def get_config() -> ml_collections.ConfigDict:
    return base()

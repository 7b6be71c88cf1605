"""Multi-layer perceptron: Dense -> [BatchNorm] -> activation -> [Dropout] per hidden layer, then a head."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """Maps `x_B...` (flattened per example) to `logits_BO`; `features=()` is logistic regression.

    With `residual`, a hidden layer whose input and output widths match adds its input back
    (h + act(Dense(h)), as the MNIST-1D paper's MLP does for its second layer).
    `kernel_init`/`bias_init` apply to every Dense layer, the head included (so a zero or constant
    init leaves every unit of a layer identical). `axis_name` is the pmap axis over which
    BatchNorm averages its batch statistics; under `jax.jit` with a sharded batch the statistics
    are global already and it stays None.
    """
    features: Sequence[int]
    num_outputs: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    dropout: float = 0.0
    use_batchnorm: bool = False
    axis_name: str | None = None
    residual: bool = False
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        h_BF = x.reshape((x.shape[0], -1))
        for width in self.features:
            skip_BF = h_BF if self.residual and h_BF.shape[-1] == width else None
            h_BF = nn.Dense(width, use_bias=not self.use_batchnorm, kernel_init=self.kernel_init,
                            bias_init=self.bias_init)(h_BF)
            if self.use_batchnorm:
                h_BF = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                    axis_name=self.axis_name)(h_BF)
            h_BF = self.activation(h_BF)
            if self.dropout > 0:
                h_BF = nn.Dropout(self.dropout, deterministic=not train)(h_BF)
            if skip_BF is not None:
                h_BF = skip_BF + h_BF
        return nn.Dense(self.num_outputs, kernel_init=self.kernel_init,
                        bias_init=self.bias_init)(h_BF)

"""Tasks for the autoencoders of `dlx.nn.autoencoder`: `Reconstruction` and `VariationalAE`.

Both read `batch["x"]` (labels, if any, only colour the latent plot) and return, like every task,
the mean loss over the real rows and sums with `count` = real rows. Per example:
`Reconstruction` loses the mean squared error over the input's entries (gaussian likelihood) or
the Bernoulli cross-entropy summed over them (nats per input); `VariationalAE` loses
-ELBO = reconstruction NLL + KL(q(z | x) || N(0, I)), in nats per input.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dlx import tasks
from dlx.errors import DlxError
from dlx.nn import autoencoder

Batch = dict[str, jax.Array]
NOISE_STREAM = 3  # `fold_in(rng, NOISE_STREAM)` seeds a denoising autoencoder's corruption.
LATENT_STREAM = 4  # `fold_in(rng, LATENT_STREAM)` seeds the VAE's eps in training steps.
EVAL_LATENT_SEED = 0  # Evaluation draws eps with `PRNGKey(EVAL_LATENT_SEED)` in any run.


def bernoulli_nll(logits_B: jax.Array, x_B: jax.Array) -> jax.Array:
    """nll_B: Bernoulli cross-entropy of `x` in [0, 1] under `logits`, summed over each example."""
    return optax.sigmoid_binary_cross_entropy(logits_B, x_B).reshape(x_B.shape[0], -1).sum(-1)


def gaussian_nll(mean_B: jax.Array, x_B: jax.Array, sigma: float) -> jax.Array:
    """nll_B: -log N(x; mean, sigma^2 I), summed over each example's entries."""
    z_B = ((x_B - mean_B) / sigma).reshape(x_B.shape[0], -1)
    return (0.5 * z_B ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)).sum(-1)


def squared_error(values_B: jax.Array, x_B: jax.Array) -> jax.Array:
    """mse_B: the mean over each example's entries of (x - values)^2."""
    return ((x_B - values_B) ** 2).reshape(x_B.shape[0], -1).mean(-1)


def _inputs(batch: Batch) -> jax.Array:
    if "x" not in batch:
        raise DlxError(f"autoencoders need a data source with inputs x; the batch has "
                       f"{', '.join(sorted(batch))}")
    return batch["x"].astype(jnp.float32)


def _real(batch: Batch, size: int) -> jax.Array:
    """real_B: the rows an evaluation batch marks as real (all rows of a training batch)."""
    where_B = batch.get("mask")
    return jnp.ones((size,), bool) if where_B is None else where_B


def _sums(real_B: jax.Array, **per_example: jax.Array) -> dict[str, jax.Array]:
    """`{name: sum over real rows}` for each per-example value, plus `count`."""
    sums = {name: jnp.where(real_B, value_B, 0.0).sum() for name, value_B in per_example.items()}
    return {**sums, "count": real_B.sum().astype(jnp.float32)}


def _means(sums: dict[str, float]) -> dict[str, float]:
    """Host-side: every sum but `count` divided by `count`."""
    count = max(float(sums["count"]), 1.0)
    return {key: float(value) / count for key, value in sums.items() if key != "count"}


def _init(model: nn.Module, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
    """(params, {}) for inputs shaped like `batch["x"]`."""
    return tasks.jitted_init(model, rng, _inputs(batch), streams=("noise", "latent"),
                             train=False), {}


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    """Autoencoding `batch["x"]`: the target is the clean input, also for a denoising model.

    Sums: `loss` (MSE, or Bernoulli cross-entropy in nats per input), `mse` (of the predicted
    values) and `count`. After training `write_artifacts` writes `reconstructions.png`,
    `latent.png` and `baselines.json` (`dlx.generative_artifacts`).
    """
    model: nn.Module

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        return _init(self.model, rng, batch)

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean reconstruction loss over real rows and sums (`loss`, `mse`, `count`)."""
        x_B = _inputs(batch)
        out_B = self.model.apply({"params": params}, x_B, train=train,
                                 rngs={"noise": jax.random.fold_in(rng, NOISE_STREAM)})
        mse_B = squared_error(autoencoder.mean(out_B, self.model.likelihood), x_B)
        loss_B = bernoulli_nll(out_B, x_B) if self.model.likelihood == "bernoulli" else mse_B
        sums = _sums(_real(batch, x_B.shape[0]), loss=loss_B, mse=mse_B)
        return sums["loss"] / jnp.maximum(sums["count"], 1.0), (sums, batch_stats)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """`loss` and `mse` per example."""
        return _means(sums)

    def write_artifacts(self, params, splits, workdir) -> dict[str, str]:
        """Reconstructions and latent plots of the test split, and the baselines; `{name: file}`."""
        from dlx import generative_artifacts
        return generative_artifacts.write(self.model, params, splits, workdir, samples=False)


@dataclasses.dataclass(frozen=True)
class VariationalAE:
    """The VAE's negative ELBO per example, -log p(x | z) + KL(q(z | x) || N(0, I)), with one
    reparameterised z ~ q(z | x) per example.

    Training draws eps from the step's rng; evaluation from `PRNGKey(EVAL_LATENT_SEED)`, so every
    evaluation of the same parameters (and eval batch size) gives the same ELBO. Sums: `loss`
    (-ELBO), `reconstruction` (the NLL term), `kl`, `count` and, in evaluation, `mse` of the
    decoded mean at z = mu. After training `write_artifacts` also writes `samples.png`.
    """
    model: nn.Module

    def init(self, rng: jax.Array, batch: Batch) -> tuple[Any, Any]:
        return _init(self.model, rng, batch)

    def nll(self, out_B: jax.Array, x_B: jax.Array) -> jax.Array:
        """nll_B = -log p(x | z) for a decoder output `out_B` (logits or means)."""
        if self.model.likelihood == "bernoulli":
            return bernoulli_nll(out_B, x_B)
        return gaussian_nll(out_B, x_B, self.model.sigma)

    def loss(self, params, batch_stats, batch: Batch, rng: jax.Array, train: bool):
        """Mean -ELBO over real rows; sums `loss`, `reconstruction`, `kl`, `count` (+ `mse`)."""
        x_B = _inputs(batch)
        key = (jax.random.fold_in(rng, LATENT_STREAM) if train
               else jax.random.PRNGKey(EVAL_LATENT_SEED))
        variables = {"params": params}
        out_B, mu_BL, logvar_BL = self.model.apply(variables, x_B, train=train,
                                                   rngs={"latent": key})
        nll_B = self.nll(out_B, x_B)
        kl_B = autoencoder.gaussian_kl(mu_BL, logvar_BL)
        per_example = {"loss": nll_B + kl_B, "reconstruction": nll_B, "kl": kl_B}
        if not train:
            mean_B = self.model.apply(variables, mu_BL, method="decode")
            per_example["mse"] = squared_error(autoencoder.mean(mean_B, self.model.likelihood),
                                               x_B)
        sums = _sums(_real(batch, x_B.shape[0]), **per_example)
        return sums["loss"] / jnp.maximum(sums["count"], 1.0), (sums, batch_stats)

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """`loss` (-ELBO), `elbo`, `reconstruction`, `kl` (nats per example) and `mse`."""
        means = _means(sums)
        return {**means, "elbo": -means["loss"]}

    def write_artifacts(self, params, splits, workdir) -> dict[str, str]:
        """As Reconstruction's, plus `samples.png`: decoded z ~ N(0, I) with a fixed key."""
        from dlx import generative_artifacts
        return generative_artifacts.write(self.model, params, splits, workdir, samples=True)


def reconstruction(config, model: nn.Module, metadata: dict[str, Any]) -> Reconstruction:
    """The task of `dense_autoencoder` and `conv_autoencoder` models."""
    del config, metadata
    return Reconstruction(model)


def variational(config, model: nn.Module, metadata: dict[str, Any]) -> VariationalAE:
    """The task of `vae` models."""
    del config, metadata
    return VariationalAE(model)

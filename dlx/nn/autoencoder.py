"""Autoencoders (dense, convolutional, denoising) and a variational autoencoder (Kingma & Welling
2014), with the reparameterisation and the closed-form Gaussian KL they need.

Every module maps `x` (B, *input_shape) to an output of the same shape: reconstruction values
(`likelihood="gaussian"`) or Bernoulli logits (`likelihood="bernoulli"`, for pixels in [0, 1]);
`mean(output)` turns either into the predicted pixel values. `encode`/`decode` expose the two
halves. A `noise` other than "none" makes the autoencoder denoising: in training only, the input
is corrupted (rng stream "noise") before encoding, while the target stays the clean input.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from dlx.errors import DlxError
from dlx.nn import activations
from dlx.nn.mlp import MLP

NOISES = ("none", "gaussian", "mask")
LIKELIHOODS = ("gaussian", "bernoulli")


def corrupt(key: jax.Array, x_B: jax.Array, kind: str, level: float) -> jax.Array:
    """`x_B...` with Gaussian noise of std `level` added, or each entry zeroed with probability
    `level` ("mask"); unchanged for "none"."""
    if kind == "none":
        return x_B
    if kind == "gaussian":
        return x_B + level * jax.random.normal(key, x_B.shape, x_B.dtype)
    if kind == "mask":
        return jnp.where(jax.random.bernoulli(key, 1.0 - level, x_B.shape), x_B, 0.0)
    raise DlxError(f"noise={kind!r} is not known; expected one of: {', '.join(NOISES)}")


def reparameterize(key: jax.Array, mu_BL: jax.Array, logvar_BL: jax.Array) -> jax.Array:
    """z_BL = mu + exp(logvar / 2) * eps with eps ~ N(0, I): a sample of N(mu, diag(exp(logvar)))
    that is differentiable in mu and logvar."""
    eps_BL = jax.random.normal(key, mu_BL.shape, mu_BL.dtype)
    return mu_BL + jnp.exp(0.5 * logvar_BL) * eps_BL


def gaussian_kl(mu_BL: jax.Array, logvar_BL: jax.Array) -> jax.Array:
    """kl_B = KL(N(mu, diag(exp(logvar))) || N(0, I)) = 1/2 sum(exp(logvar) + mu^2 - 1 - logvar)."""
    return 0.5 * jnp.sum(jnp.exp(logvar_BL) + mu_BL ** 2 - 1.0 - logvar_BL, axis=-1)


def mean(output_B: jax.Array, likelihood: str) -> jax.Array:
    """Predicted values from a decoder output: sigmoid of Bernoulli logits, Gaussian means as is."""
    return jax.nn.sigmoid(output_B) if likelihood == "bernoulli" else output_B


def _check_shape(module_name: str, input_shape: tuple[int, ...], x_B: jax.Array) -> None:
    if tuple(x_B.shape[1:]) != tuple(input_shape):
        raise DlxError(f"{module_name} was built for inputs of shape (batch, "
                       f"{', '.join(map(str, input_shape))}) (model.input_shape); got {x_B.shape}")


class DenseAutoencoder(nn.Module):
    """x (B, *input_shape) -> MLP encoder -> z_BL (`latent` wide) -> mirrored MLP decoder ->
    output (B, *input_shape); with `noise`, a denoising autoencoder."""
    input_shape: tuple[int, ...]
    features: Sequence[int] = (128, 64)
    latent: int = 8
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    noise: str = "none"
    noise_level: float = 0.0
    likelihood: str = "gaussian"

    def setup(self):
        self.encoder = MLP(tuple(self.features), self.latent, self.activation)
        self.decoder = MLP(tuple(reversed(self.features)), math.prod(self.input_shape),
                           self.activation)

    def encode(self, x_B: jax.Array) -> jax.Array:
        """x (B, *input_shape) -> z_BL."""
        _check_shape("DenseAutoencoder", self.input_shape, x_B)
        return self.encoder(x_B)

    def decode(self, z_BL: jax.Array) -> jax.Array:
        """z_BL -> output (B, *input_shape)."""
        return self.decoder(z_BL).reshape((z_BL.shape[0], *self.input_shape))

    def __call__(self, x_B: jax.Array, *, train: bool = False) -> jax.Array:
        """x (B, *input_shape) -> output (B, *input_shape); the input is corrupted in training."""
        if train and self.noise != "none":
            x_B = corrupt(self.make_rng("noise"), x_B, self.noise, self.noise_level)
        return self.decode(self.encode(x_B))


class ConvAutoencoder(nn.Module):
    """Images (B, H, W) or (B, H, W, C) -> 3x3 stride-2 convs (`channels`, each halving H and W)
    -> Dense to z_BL -> Dense and 3x3 stride-2 transposed convs back -> output of the input's
    shape; with `noise`, a denoising autoencoder. `input_shape` is (H, W) or (H, W, C)."""
    input_shape: tuple[int, ...]
    channels: Sequence[int] = (16, 32)
    latent: int = 16
    noise: str = "none"
    noise_level: float = 0.0
    likelihood: str = "gaussian"

    def setup(self):
        if len(self.input_shape) not in (2, 3) or not self.channels:
            raise DlxError(f"ConvAutoencoder needs model.input_shape (H, W) or (H, W, C) and at "
                           f"least one model.channels entry; got {tuple(self.input_shape)} and "
                           f"{tuple(self.channels)}")
        height, width = self.input_shape[:2]
        factor = 2 ** len(self.channels)
        if height % factor or width % factor:
            raise DlxError(f"ConvAutoencoder with {len(self.channels)} stride-2 layers needs H and "
                           f"W divisible by {factor}; got model.input_shape={self.input_shape}")
        self.code_shape = (height // factor, width // factor, self.channels[-1])
        self.down = [nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME") for c in self.channels]
        self.to_code = nn.Dense(self.latent)
        self.from_code = nn.Dense(math.prod(self.code_shape))
        out_channels = self.input_shape[2] if len(self.input_shape) == 3 else 1
        widths = tuple(reversed(self.channels[:-1])) + (out_channels,)
        self.up = [nn.ConvTranspose(c, (3, 3), strides=(2, 2), padding="SAME") for c in widths]

    def _images(self, x_B: jax.Array) -> jax.Array:
        """(B, H, W) or (B, H, W, C) -> x_BHWC, checked against `input_shape`."""
        height, width = self.input_shape[:2]
        channels = self.input_shape[2] if len(self.input_shape) == 3 else 1
        if x_B.shape[1:] not in ((height, width), (height, width, channels)):
            raise DlxError(f"ConvAutoencoder expects images (batch, {height}, {width}) or (batch, "
                           f"{height}, {width}, {channels}) (model.input_shape); got {x_B.shape}")
        return x_B.reshape((x_B.shape[0], height, width, channels))

    def encode(self, x_B: jax.Array) -> jax.Array:
        """Images (B, H, W[, C]) -> z_BL."""
        h_BHWC = self._images(x_B)
        for conv in self.down:
            h_BHWC = nn.relu(conv(h_BHWC))
        return self.to_code(h_BHWC.reshape((h_BHWC.shape[0], -1)))

    def decode(self, z_BL: jax.Array) -> jax.Array:
        """z_BL -> output (B, *input_shape)."""
        h_BHWC = nn.relu(self.from_code(z_BL)).reshape((z_BL.shape[0], *self.code_shape))
        for index, conv in enumerate(self.up):
            h_BHWC = conv(h_BHWC)
            if index < len(self.up) - 1:
                h_BHWC = nn.relu(h_BHWC)
        return h_BHWC.reshape((z_BL.shape[0], *self.input_shape))

    def __call__(self, x_B: jax.Array, *, train: bool = False) -> jax.Array:
        """Images (B, H, W[, C]) -> output of the same shape; the input is corrupted in training."""
        if train and self.noise != "none":
            x_B = corrupt(self.make_rng("noise"), x_B, self.noise, self.noise_level)
        return self.decode(self.encode(x_B)).reshape(x_B.shape)


class VAE(nn.Module):
    """Variational autoencoder: x (B, *input_shape) -> MLP encoder -> (mu_BL, logvar_BL) ->
    z_BL = mu + exp(logvar / 2) eps (rng stream "latent") -> mirrored MLP decoder -> output.

    The decoder output parameterises p(x | z): Bernoulli logits, or the means of a Gaussian with
    fixed standard deviation `sigma`.
    """
    input_shape: tuple[int, ...]
    features: Sequence[int] = (256, 128)
    latent: int = 2
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    likelihood: str = "bernoulli"
    sigma: float = 1.0

    def setup(self):
        self.encoder = MLP(tuple(self.features), 2 * self.latent, self.activation)
        self.decoder = MLP(tuple(reversed(self.features)), math.prod(self.input_shape),
                           self.activation)

    def encode(self, x_B: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x (B, *input_shape) -> (mu_BL, logvar_BL) of q(z | x)."""
        _check_shape("VAE", self.input_shape, x_B)
        mu_BL, logvar_BL = jnp.split(self.encoder(x_B), 2, axis=-1)
        return mu_BL, logvar_BL

    def decode(self, z_BL: jax.Array) -> jax.Array:
        """z_BL -> output (B, *input_shape) parameterising p(x | z)."""
        return self.decoder(z_BL).reshape((z_BL.shape[0], *self.input_shape))

    def __call__(self, x_B: jax.Array, *, train: bool = False
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """x (B, *input_shape) -> (output of x's shape at a sampled z, mu_BL, logvar_BL)."""
        del train  # Sampling is the same in training and evaluation; the caller picks the key.
        mu_BL, logvar_BL = self.encode(x_B)
        z_BL = reparameterize(self.make_rng("latent"), mu_BL, logvar_BL)
        return self.decode(z_BL), mu_BL, logvar_BL


def _positive_ints(name: str, given) -> tuple[int, ...]:
    """`given` (one int or a sequence) as a tuple of positive ints; a one-line error otherwise."""
    values = tuple(given) if isinstance(given, (list, tuple)) else (given,)
    if not values or not all(isinstance(v, int) and v > 0 for v in values):
        raise DlxError(f"model.{name}={given!r} is invalid; expected positive integers")
    return values


def _check_noise(kind: str, level: float) -> None:
    if kind not in NOISES:
        raise DlxError(f"model.noise={kind!r} is not known; expected one of: {', '.join(NOISES)}")
    if kind == "mask" and not 0 <= level < 1:
        raise DlxError(f"model.noise_level={level!r} is invalid for mask noise; expected a "
                       f"probability in [0, 1)")
    if kind == "gaussian" and not 0 <= level < math.inf:
        raise DlxError(f"model.noise_level={level!r} is invalid for gaussian noise; expected a "
                       f"standard deviation >= 0")


def _check_likelihood(likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise DlxError(f"model.likelihood={likelihood!r} is not known; expected one of: "
                       f"{', '.join(LIKELIHOODS)}")


def from_config(model_config: ml_collections.ConfigDict) -> nn.Module:
    """The module for `model.name` dense_autoencoder, conv_autoencoder or vae, validated."""
    name = model_config.name
    input_shape = _positive_ints("input_shape", model_config.input_shape)
    (latent,) = _positive_ints("latent", model_config.latent)
    _check_likelihood(model_config.likelihood)
    if name == "conv_autoencoder":
        _check_noise(model_config.noise, model_config.noise_level)
        return ConvAutoencoder(input_shape=input_shape,
                               channels=_positive_ints("channels", model_config.channels),
                               latent=latent, noise=model_config.noise,
                               noise_level=float(model_config.noise_level),
                               likelihood=model_config.likelihood)
    features = tuple(model_config.features)
    if features:
        _positive_ints("features", features)
    activation = activations.get(model_config.activation)
    if name == "dense_autoencoder":
        _check_noise(model_config.noise, model_config.noise_level)
        return DenseAutoencoder(input_shape=input_shape, features=features, latent=latent,
                                activation=activation, noise=model_config.noise,
                                noise_level=float(model_config.noise_level),
                                likelihood=model_config.likelihood)
    if name == "vae":
        if not 0 < model_config.sigma < math.inf:
            raise DlxError(f"model.sigma={model_config.sigma!r} is invalid; expected the "
                           f"Gaussian decoder's standard deviation, > 0")
        return VAE(input_shape=input_shape, features=features, latent=latent,
                   activation=activation, likelihood=model_config.likelihood,
                   sigma=float(model_config.sigma))
    raise DlxError(f"model.name={name!r} is not an autoencoder; expected one of: "
                   f"dense_autoencoder, conv_autoencoder, vae")

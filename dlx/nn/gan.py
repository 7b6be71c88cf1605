"""A DCGAN-style generator and discriminator for small square images, and the GAN losses.

`GAN` holds both players as the submodules `generator` and `discriminator`, so its params are
`{"generator": ..., "discriminator": ...}` and each player can be updated on its own. Neither
uses BatchNorm: with no running statistics, a discriminator step and a generator step see the
same function in training and evaluation.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.errors import DlxError
from dlx.nn import init
from dlx.nn.cnn import as_images

OUTPUTS = ("sigmoid", "tanh")
LEAKY_SLOPE = 0.2  # DCGAN's leaky-ReLU slope in the discriminator.


def upsample_he_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """He's normal for a stride-2 transposed conv kernel (kh, kw, in, out): std sqrt(8 / fan_in).

    Each output reaches only a quarter of the kernel's taps (2x2 of 4x4), so the fan-in its shape
    suggests is 4x too large; scaled back, the latent's signal keeps its size through the
    generator instead of shrinking ~8x per layer (without normalisation layers nothing restores
    it, and the samples would barely depend on z).
    """
    fan_in, _ = init.fans(shape)
    return init.normal(math.sqrt(8.0 / fan_in))(key, shape, dtype)


class Generator(nn.Module):
    """Maps `z_BL` (B, latent) to images `x_BHW` (B, size, size) in [0, 1].

    Dense -> reshape to (size / 4, size / 4, 2 features) -> ReLU -> transposed conv 4x4 stride 2
    (2 features) -> ReLU -> transposed conv 4x4 stride 2 (features) -> ReLU -> conv 3x3 (1) ->
    sigmoid, or tanh mapped to [0, 1] by (t + 1) / 2.
    """
    image_size: int = 8
    features: int = 64
    output: str = "sigmoid"

    @nn.compact
    def __call__(self, z_BL: jax.Array) -> jax.Array:
        if z_BL.ndim != 2:
            raise DlxError(f"Generator expects latents of shape (batch, latent); got {z_BL.shape}")
        if self.image_size % 4 or self.image_size < 4:
            raise DlxError(f"model.image_size={self.image_size} is invalid; expected a positive "
                           f"multiple of 4 (two stride-2 upsamplings)")
        if self.output not in OUTPUTS:
            raise DlxError(f"model.output={self.output!r} is not known; expected one of: "
                           f"{', '.join(OUTPUTS)}")
        start = self.image_size // 4
        h_BF = nn.Dense(start * start * 2 * self.features, kernel_init=init.he_normal)(z_BL)
        h_BHWC = nn.relu(h_BF.reshape((z_BL.shape[0], start, start, 2 * self.features)))
        for features in (2 * self.features, self.features):
            h_BHWC = nn.ConvTranspose(features, kernel_size=(4, 4), strides=(2, 2),
                                      padding="SAME", kernel_init=upsample_he_normal)(h_BHWC)
            h_BHWC = nn.relu(h_BHWC)
        logits_BHW = nn.Conv(1, kernel_size=(3, 3), padding="SAME",
                             kernel_init=init.lecun_normal)(h_BHWC)[..., 0]
        if self.output == "sigmoid":
            return jax.nn.sigmoid(logits_BHW)
        return (jnp.tanh(logits_BHW) + 1.0) / 2.0


def append_minibatch_std(h_BHWC: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, H, W, C + 1): the last channel is the standard deviation over the batch
    of each feature, averaged over features and positions (ProGAN's minibatch statistic)."""
    std = jnp.sqrt(h_BHWC.var(axis=0) + 1e-8).mean()
    return jnp.concatenate([h_BHWC, jnp.broadcast_to(std, h_BHWC.shape[:-1] + (1,))], axis=-1)


class Discriminator(nn.Module):
    """Maps images `x_BHW` (B, H, W) or `x_BHWC` to one real-vs-fake logit per image, (B,).

    conv 4x4 stride 2 (features) -> leaky ReLU -> conv 4x4 stride 2 (2 features) -> leaky ReLU
    -> [minibatch standard deviation channel] -> flatten -> Dense(1); leaky ReLU slope 0.2.
    The minibatch channel lets the discriminator see a batch's diversity, so a generator that
    collapses onto a few modes is caught; it makes a logit depend on the rest of its batch.
    """
    features: int = 64
    minibatch_std: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h_BHWC = as_images("Discriminator", x)
        for features in (self.features, 2 * self.features):
            h_BHWC = nn.Conv(features, kernel_size=(4, 4), strides=(2, 2), padding="SAME",
                             kernel_init=init.lecun_normal)(h_BHWC)
            h_BHWC = nn.leaky_relu(h_BHWC, LEAKY_SLOPE)
        if self.minibatch_std:
            h_BHWC = append_minibatch_std(h_BHWC)
        return nn.Dense(1, kernel_init=init.lecun_normal)(h_BHWC.reshape((x.shape[0], -1)))[:, 0]


class GAN(nn.Module):
    """Both players: `generate(z_BL) -> x_BHW`, `discriminate(x_BHW) -> logits_B`; calling the
    module runs `discriminate(generate(z_BL))`, which `init` uses to create both param sets."""
    latent_dim: int = 32
    image_size: int = 8
    generator_features: int = 64
    discriminator_features: int = 64
    output: str = "sigmoid"
    minibatch_std: bool = True

    def setup(self):
        self.generator = Generator(self.image_size, self.generator_features, self.output)
        self.discriminator = Discriminator(self.discriminator_features, self.minibatch_std)

    def generate(self, z_BL: jax.Array) -> jax.Array:
        """(B, latent) -> (B, size, size) images in [0, 1]."""
        return self.generator(z_BL)

    def discriminate(self, x_BHW: jax.Array) -> jax.Array:
        """(B, H, W) images -> (B,) logits of "real"."""
        return self.discriminator(x_BHW)

    def __call__(self, z_BL: jax.Array) -> jax.Array:
        return self.discriminate(self.generate(z_BL))


def discriminator_loss(real_logits_B: jax.Array, fake_logits_B: jax.Array) -> jax.Array:
    """Per-example (B,): -log D(x) - log(1 - D(G(z))), with D = sigmoid of the logit."""
    return -jax.nn.log_sigmoid(real_logits_B) - jax.nn.log_sigmoid(-fake_logits_B)


def generator_loss(fake_logits_B: jax.Array) -> jax.Array:
    """Per-example (B,): the non-saturating -log D(G(z))."""
    return -jax.nn.log_sigmoid(fake_logits_B)

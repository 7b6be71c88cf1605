"""Convolution arithmetic (output sizes, parameter counts) and the CNNs built on it."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.errors import DlxError


def _check_positive(**values: int) -> None:
    """Raises DlxError naming the first argument that is not a positive int."""
    for name, value in values.items():
        if value <= 0:
            raise DlxError(f"{name}={value!r} is invalid; expected a positive integer")


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                 kernel_name: str) -> int:
    """floor((size + 2P - D(M-1) - 1) / S) + 1 after validating the arguments."""
    _check_positive(size=size, **{kernel_name: kernel}, stride=stride, dilation=dilation)
    if padding < 0:
        raise DlxError(f"padding={padding!r} is invalid; expected a non-negative integer")
    span = dilation * (kernel - 1) + 1
    if span > size + 2 * padding:
        raise DlxError(f"{kernel_name}={kernel} (span {span} with dilation={dilation}) is invalid; "
                       f"expected at most the padded input size {size + 2 * padding}")
    return (size + 2 * padding - span) // stride + 1


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length along one axis: floor((H - D(M-1) - 1 + 2P) / S) + 1."""
    return _output_size(size, kernel, stride, padding, dilation, "kernel")


def conv_param_count(kernel_h: int, kernel_w: int, in_channels: int, out_channels: int,
                     bias: bool = True) -> int:
    """Parameters of a 2-D conv: (M N Cin + 1) Cout, or M N Cin Cout without bias."""
    _check_positive(kernel_h=kernel_h, kernel_w=kernel_w, in_channels=in_channels,
                    out_channels=out_channels)
    return (kernel_h * kernel_w * in_channels + int(bias)) * out_channels


def pool_output_size(size: int, window: int, stride: int | None = None, padding: int = 0) -> int:
    """Output length along one axis of a pooling layer; `stride` defaults to `window`."""
    return _output_size(size, window, window if stride is None else stride, padding, 1, "window")


CONV1D_KERNELS = (5, 3, 3)  # Conv1DNet's kernel sizes; every layer has stride 2 and padding 1.


class Conv1DNet(nn.Module):
    """MNIST-1D's ConvBase (Greydanus 2020): maps `x_BT` (B, T) to `logits_BO` (B, num_outputs).

    conv(k5 s2 p1) -> ReLU -> conv(k3 s2 p1) -> ReLU -> conv(k3 s2 p1) -> ReLU -> flatten -> Dense,
    `channels` wide. The flattened size follows from T: with `conv_output_size`, T = 40 gives
    40 -> 19 -> 10 -> 5 positions, so 5 * 25 = 125 features and 5,210 parameters in all. Features
    flatten position-major (Flax's (B, L, C) layout), a fixed permutation of the paper's
    channel-major PyTorch flatten, so the head's rows are reordered but the function class is equal.
    """
    num_outputs: int
    channels: int = 25

    @nn.compact
    def __call__(self, x_BT: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # No dropout or normalisation: train and eval are the same function.
        if x_BT.ndim != 2:
            raise DlxError(f"Conv1DNet expects inputs of shape (batch, length); got {x_BT.shape}")
        h_BLC = x_BT[:, :, None]
        for kernel in CONV1D_KERNELS:
            h_BLC = nn.Conv(self.channels, kernel_size=(kernel,), strides=(2,),
                            padding=((1, 1),))(h_BLC)
            h_BLC = nn.relu(h_BLC)
        return nn.Dense(self.num_outputs)(h_BLC.reshape((h_BLC.shape[0], -1)))


def _pool_windows(h_BHWC: jax.Array) -> list[jax.Array]:
    """Even-sized (B, H, W, C) -> the four (B, H / 2, W / 2, C) window corners, row-major."""
    return [h_BHWC[:, i::2, j::2] for i in range(2) for j in range(2)]


@jax.custom_jvp
def _max_pool_even(h_BHWC: jax.Array) -> jax.Array:
    """(B, H, W, C) with even H and W -> (B, H / 2, W / 2, C): the max of each 2x2 window."""
    return functools.reduce(jnp.maximum, _pool_windows(h_BHWC))


@_max_pool_even.defjvp
def _max_pool_even_jvp(primals, tangents):
    """Tangent of each window's first maximal corner: `nn.max_pool`'s gradient, ties included."""
    (h_BHWC,), (t_BHWC,) = primals, tangents
    h_windows, t_windows = _pool_windows(h_BHWC), _pool_windows(t_BHWC)
    y_BHWC = functools.reduce(jnp.maximum, h_windows)
    t_y_BHWC = t_windows[-1]
    for h_corner, t_corner in zip(h_windows[-2::-1], t_windows[-2::-1]):
        t_y_BHWC = jnp.where(h_corner == y_BHWC, t_corner, t_y_BHWC)
    return y_BHWC, t_y_BHWC


def max_pool_2x2(h_BHWC: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, H // 2, W // 2, C): `nn.max_pool(h, (2, 2), strides=(2, 2))`.

    Equal in value and gradient (ties go to the first maximum, as in XLA's select-and-scatter;
    autodiff of `maximum` would split them), but built from strided slices and `maximum`:
    `reduce_window`'s gradient is over 10x slower on XLA's CPU backend (about 55 ms vs 2-5 ms for
    SimpleCNN's first pool at batch 128). An odd last row or column is dropped, as VALID pooling
    does.
    """
    if h_BHWC.ndim != 4:
        raise DlxError(f"max_pool_2x2 expects inputs of shape (batch, H, W, C); got {h_BHWC.shape}")
    height, width = h_BHWC.shape[1] // 2 * 2, h_BHWC.shape[2] // 2 * 2
    return _max_pool_even(h_BHWC[:, :height, :width])


SIMPLE_CNN_CHANNELS = (32, 64)  # SimpleCNN's conv widths; every conv is 5x5 with padding 2.


def as_images(module_name: str, x: jax.Array) -> jax.Array:
    """Images (B, H, W) or (B, H, W, C) -> h_BHWC (one channel added to the first); a one-line
    error naming `module_name` for any other rank."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DlxError(f"{module_name} expects images of shape (batch, H, W) or "
                       f"(batch, H, W, C); got {x.shape}")
    return x


class SimpleCNN(nn.Module):
    """Two conv-pool stages and an MLP head: maps `x_BHW` or `x_BHWC` to `logits_BO`.

    conv 5x5 (32, pad 2) -> [BatchNorm] -> ReLU -> max-pool 2 -> conv 5x5 (64, pad 2) -> [BatchNorm]
    -> ReLU -> max-pool 2 -> dropout -> flatten -> Dense(hidden) -> ReLU -> Dense(num_outputs).
    The convs keep H and W and each pool halves them (floor), so the flattened size is
    (H // 4) * (W // 4) * 64: 8x8 digits give 8 -> 8 -> 4 -> 4 -> 2, i.e. 2 * 2 * 64 = 256 features;
    28x28 MNIST gives 7 * 7 * 64 = 3136; 32x32 CIFAR 8 * 8 * 64 = 4096. A (B, H, W) input gets one
    channel. With BatchNorm the convs drop their bias; `axis_name` is the pmap axis BatchNorm
    averages over, as in the MLP. The pools are `max_pool_2x2`, the same function as `nn.max_pool`
    with a much faster gradient on CPU, and each ReLU runs after its pool (an equal function).
    """
    num_outputs: int
    use_batchnorm: bool = False
    dropout: float = 0.25
    hidden: int = 1000
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        h_BHWC = as_images("SimpleCNN", x)
        for features in SIMPLE_CNN_CHANNELS:
            h_BHWC = nn.Conv(features, kernel_size=(5, 5), padding=((2, 2), (2, 2)),
                             use_bias=not self.use_batchnorm)(h_BHWC)
            if self.use_batchnorm:
                h_BHWC = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                      axis_name=self.axis_name)(h_BHWC)
            # max-pool and ReLU commute (both monotone), so ReLU runs on the 4x smaller output.
            h_BHWC = nn.relu(max_pool_2x2(h_BHWC))
        if self.dropout > 0:
            h_BHWC = nn.Dropout(self.dropout, deterministic=not train)(h_BHWC)
        h_BF = h_BHWC.reshape((h_BHWC.shape[0], -1))
        h_BF = nn.relu(nn.Dense(self.hidden)(h_BF))
        return nn.Dense(self.num_outputs)(h_BF)

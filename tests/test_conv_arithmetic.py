"""Conv/pool arithmetic against the shapes and parameter counts flax.linen actually produces."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from dlx.errors import DlxError
from dlx.nn.cnn import conv_output_size, conv_param_count, pool_output_size


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    (28, 3, 1, 0, 1),
    (28, 3, 1, 1, 1),
    (28, 5, 1, 2, 1),
    (28, 5, 2, 0, 1),
    (28, 3, 2, 1, 1),
    (27, 5, 2, 1, 1),
    (28, 3, 1, 0, 2),
    (28, 3, 2, 2, 3),
    (7, 7, 1, 0, 1),
    (5, 3, 3, 0, 2),
])
def test_conv_output_size_and_param_count_match_flax(size, kernel, stride, padding, dilation):
    conv = nn.Conv(features=6, kernel_size=(kernel, kernel), strides=(stride, stride),
                   padding=((padding, padding), (padding, padding)),
                   kernel_dilation=(dilation, dilation))
    x_BHWC = jnp.zeros((1, size, size, 2))
    variables = jax.eval_shape(conv.init, jax.random.PRNGKey(0), x_BHWC)
    y = jax.eval_shape(conv.apply, variables, x_BHWC)
    out = conv_output_size(size, kernel, stride, padding, dilation)
    assert y.shape == (1, out, out, 6)
    count = sum(p.size for p in jax.tree.leaves(variables["params"]))
    assert count == conv_param_count(kernel, kernel, 2, 6)


@pytest.mark.parametrize("kernel_h,kernel_w,cin,cout", [(3, 3, 1, 32), (5, 3, 4, 8), (1, 1, 16, 3)])
def test_conv_param_count_without_bias_matches_flax(kernel_h, kernel_w, cin, cout):
    conv = nn.Conv(features=cout, kernel_size=(kernel_h, kernel_w), use_bias=False)
    variables = jax.eval_shape(conv.init, jax.random.PRNGKey(0), jnp.zeros((1, 9, 9, cin)))
    count = sum(p.size for p in jax.tree.leaves(variables["params"]))
    assert count == conv_param_count(kernel_h, kernel_w, cin, cout, bias=False)
    assert conv_param_count(kernel_h, kernel_w, cin, cout) == count + cout


def test_conv_output_size_matches_the_notes_formula_without_dilation():
    for size, kernel, stride, padding in [(28, 5, 1, 0), (32, 3, 2, 1), (10, 4, 3, 2)]:
        expected = (size - kernel + 2 * padding) // stride + 1
        assert conv_output_size(size, kernel, stride, padding) == expected


@pytest.mark.parametrize("size,window,stride,padding", [
    (28, 2, None, 0),
    (28, 3, None, 0),
    (28, 3, 2, 0),
    (28, 3, 2, 1),
    (7, 2, 1, 0),
    (5, 5, None, 0),
])
def test_pool_output_size_matches_flax_max_pool(size, window, stride, padding):
    flax_stride = window if stride is None else stride  # flax's own default stride is 1.
    x_BHWC = jnp.zeros((1, size, size, 1))
    y = jax.eval_shape(lambda x: nn.max_pool(x, (window, window), strides=(flax_stride,) * 2,
                                             padding=((padding, padding), (padding, padding))),
                       x_BHWC)
    out = pool_output_size(size, window, stride, padding)
    assert y.shape == (1, out, out, 1)


@pytest.mark.parametrize("call,name", [
    (lambda: conv_output_size(0, 3), "size"),
    (lambda: conv_output_size(28, -1), "kernel"),
    (lambda: conv_output_size(28, 3, stride=0), "stride"),
    (lambda: conv_output_size(28, 3, dilation=0), "dilation"),
    (lambda: conv_output_size(28, 3, padding=-1), "padding"),
    (lambda: conv_output_size(4, 5), "kernel"),
    (lambda: conv_output_size(5, 3, dilation=3), "kernel"),
    (lambda: conv_param_count(3, 0, 1, 8), "kernel_w"),
    (lambda: conv_param_count(3, 3, 1, 0), "out_channels"),
    (lambda: pool_output_size(3, 4), "window"),
    (lambda: pool_output_size(8, 2, stride=-2), "stride"),
])
def test_bad_arguments_raise_one_line_dlx_error_naming_the_argument(call, name):
    with pytest.raises(DlxError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name}=") and "expected" in message and "\n" not in message


def test_kernel_that_fits_only_with_padding_is_accepted():
    assert conv_output_size(4, 5, padding=1) == 2
    assert pool_output_size(3, 4, stride=1, padding=1) == 2

"""Convolution arithmetic: output sizes and parameter counts of conv and pooling layers."""

from __future__ import annotations

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

"""Training FLOPs of a Transformer per token, accelerator peak FLOP/s, and model FLOPs utilisation.

Per token, one training step (forward + backward) of a BERT/GPT-style stack costs about

    flops_per_token = 6 * N + 12 * L * H * T

(Chowdhery et al. 2022, PaLM, appendix B; Hoffmann et al. 2022, Chinchilla, appendix F), where
N = L * (4 * H^2 + 2 * H * F) is the non-embedding parameter count (the Q, K, V and output
projections and the two MLP kernels of each of the L layers, hidden size H, MLP width F), and
12 * L * H * T is the attention itself over a sequence of T tokens (the scores q·k and the
weighted sum of the values, 2 * T * H multiply-adds each per token and layer). The factor 3
between them (6 = 3 * 2, 12 = 3 * 4) is the forward pass plus a backward pass that costs two
forward passes. Biases, LayerNorms, softmax and the embedding lookups are left out, and so is an
output layer over the vocabulary (tied to the embedding in BERT and GPT-2): the MFU this gives
is the conventional, slightly conservative one. MFU = achieved model FLOP/s over the device's
dense peak.
"""

from __future__ import annotations

from typing import NamedTuple

from dlx.errors import DlxError

TERA = 1e12


class Peak(NamedTuple):
    """Dense (no sparsity) peak FLOP/s of one chip: bfloat16 matmuls and plain float32; None
    where the vendor publishes no float32 figure (TPUs run float32 matmuls as bf16 passes)."""
    bfloat16: float
    float32: float | None


# Per chip, dense. NVIDIA's datasheets quote bf16 "with sparsity"; these are half of that.
PEAKS: dict[str, Peak] = {
    # NVIDIA H100 datasheet: SXM BF16 Tensor Core 1,979 TFLOPS (sparse), FP32 67 TFLOPS.
    "H100 SXM": Peak(989.5 * TERA, 67 * TERA),
    # Same datasheet: PCIe BF16 Tensor Core 1,513 TFLOPS (sparse), FP32 51 TFLOPS.
    "H100 PCIe": Peak(756.5 * TERA, 51 * TERA),
    # NVIDIA H200 datasheet: SXM BF16 Tensor Core 1,979 TFLOPS (sparse), FP32 67 TFLOPS.
    "H200": Peak(989.5 * TERA, 67 * TERA),
    # NVIDIA A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 sparse), FP32 19.5 TFLOPS.
    "A100": Peak(312 * TERA, 19.5 * TERA),
    # Google Cloud TPU system architecture pages, bf16 peak per chip: v4 275 TFLOPS,
    # v5e 197 TFLOPS, v5p 459 TFLOPS.
    "TPU v4": Peak(275 * TERA, None),
    "TPU v5e": Peak(197 * TERA, None),
    "TPU v5p": Peak(459 * TERA, None),
}

# jax's `device.device_kind` (lower-cased) -> PEAKS key; the first matching fragment wins.
_KIND_FRAGMENTS: tuple[tuple[str, str], ...] = (
    ("h100 pcie", "H100 PCIe"),
    ("h100", "H100 SXM"),  # "NVIDIA H100 80GB HBM3" is the SXM part.
    ("h200", "H200"),
    ("a100", "A100"),
    ("tpu v5 lite", "TPU v5e"),
    ("tpu v5e", "TPU v5e"),
    ("tpu v5p", "TPU v5p"),
    ("tpu v5", "TPU v5p"),
    ("tpu v4", "TPU v4"),
)


def non_embedding_params(num_layers: int, hidden: int, mlp_dim: int) -> int:
    """N = L * (4 H^2 + 2 H F): the attention and MLP kernels of `num_layers` blocks."""
    return num_layers * (4 * hidden * hidden + 2 * hidden * mlp_dim)


def training_flops_per_token(num_layers: int, hidden: int, seq_len: int,
                             mlp_dim: int | None = None) -> int:
    """6 N + 12 L H T: forward + backward FLOPs per token (module docstring); F defaults to 4 H."""
    for name, value in (("num_layers", num_layers), ("hidden", hidden), ("seq_len", seq_len)):
        if not isinstance(value, int) or value < 1:
            raise DlxError(f"training_flops_per_token got {name}={value!r}; expected a positive "
                           f"int")
    mlp_dim = 4 * hidden if mlp_dim is None else mlp_dim
    if not isinstance(mlp_dim, int) or mlp_dim < 1:
        raise DlxError(f"training_flops_per_token got mlp_dim={mlp_dim!r}; expected a positive "
                       f"int")
    attention = 12 * num_layers * hidden * seq_len
    return 6 * non_embedding_params(num_layers, hidden, mlp_dim) + attention


def device_name(device_kind: str) -> str | None:
    """The PEAKS key of a jax `device_kind` (e.g. "NVIDIA H100 80GB HBM3" -> "H100 SXM"), or
    None for a device the table lacks."""
    kind = device_kind.lower()
    if kind in (name.lower() for name in PEAKS):
        return next(name for name in PEAKS if name.lower() == kind)
    return next((name for fragment, name in _KIND_FRAGMENTS if fragment in kind), None)


def peak_flops(device_kind: str, dtype: str = "bfloat16") -> float:
    """Dense peak FLOP/s of one `device_kind` chip in `dtype` ("bfloat16" or "float32")."""
    if dtype not in Peak._fields:
        raise DlxError(f"dtype={dtype!r} has no peak; expected one of: {', '.join(Peak._fields)}")
    name = device_name(device_kind)
    if name is None:
        raise DlxError(f"device kind {device_kind!r} has no known peak FLOP/s; expected one of: "
                       f"{', '.join(PEAKS)}")
    peak = getattr(PEAKS[name], dtype)
    if peak is None:
        raise DlxError(f"{name} has no published {dtype} peak; expected dtype='bfloat16'")
    return peak


def mfu(tokens_per_s: float, flops_per_token: float, device_kind: str,
        dtype: str = "bfloat16") -> float:
    """Model FLOPs utilisation of one chip: tokens_per_s * flops_per_token / peak (a fraction)."""
    if tokens_per_s < 0 or flops_per_token <= 0:
        raise DlxError(f"mfu got tokens_per_s={tokens_per_s}, flops_per_token={flops_per_token}; "
                       f"expected tokens_per_s >= 0 and flops_per_token > 0")
    return tokens_per_s * flops_per_token / peak_flops(device_kind, dtype)

"""Attention: scaled dot-product (written out or jax's fused kernel), additive, masks, multi-head.

Scaled dot-product attention (Vaswani et al. 2017), per batch row and head::

    scores_TS = q_TD · k_SD^T / sqrt(D) + bias_TS      weights_TS = softmax over S of scores_TS
    out_TD = weights_TS · v_SD                          (context c_t = Σ_s α_ts v_s)

The scale is sqrt of the head dim D: q·k of unit-variance entries has variance D. Additive
(Bahdanau) attention scores a query s_t against each key h_s as vᵀ tanh(W_s s_t + W_h h_s) and
sums the keys themselves with the softmaxed scores.

Masks are boolean, True = attend, of rank 4 and broadcastable to `(B, H, T, S)`; `causal_mask`,
`padding_mask` and `combine_masks` build them. A query row with every key masked gets all-zero
weights, hence a zero output and zero gradients (never NaN), in the written-out and fused paths
alike (jax's kernel alone would average all values uniformly there). Logits and softmax are
at least float32 (bf16 inputs too); the weights are cast back to the inputs' dtype for the sum.

`MultiHeadAttention` keeps torch/HF's layout: Dense `query`, `key`, `value` with kernels
`(M, H·D)` and `out` with kernel `(H·D, M)`, heads major along `H·D` (`reshape(B, T, H, D)`), so a
torch `nn.Linear` weight `W` maps to `kernel = W.T` unchanged.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError
from dlx.nn import dropout, mixed_dot

Initializer = Callable[..., jax.Array]

# Finite, so a fully masked row's softmax is uniform rather than NaN before it is zeroed; 0.7 of
# the float32 maximum leaves room to subtract the row maximum without overflow (as jax.nn does).
_MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)
IMPLEMENTATIONS = (None, "xla", "cudnn")


def _check_broadcastable(name: str, x: jax.Array, shape: tuple[int, ...], layout: str) -> None:
    """Raises DlxError unless `x` has rank len(shape) and each axis is 1 or equal to `shape`'s."""
    if x.ndim != len(shape) or any(a not in (1, s) for a, s in zip(x.shape, shape)):
        raise DlxError(f"{name} has shape {tuple(x.shape)}; expected rank {len(shape)} "
                       f"broadcastable to {layout} = {shape}")


def _check_mask(mask: jax.Array | None, shape: tuple[int, ...], layout: str) -> None:
    """Raises DlxError unless `mask` is None or a boolean array broadcastable to `shape`."""
    if mask is None:
        return
    if mask.dtype != jnp.bool_:
        raise DlxError(f"mask has dtype {mask.dtype}; expected bool (True = attend)")
    _check_broadcastable("mask", mask, shape, layout)


def _check_qkv(q_BTHD: jax.Array, k_BSHD: jax.Array, v_BSHD: jax.Array) -> None:
    """Raises DlxError unless q, k, v are rank 4 with matching batch, heads and q/k head dim."""
    for name, x in (("q", q_BTHD), ("k", k_BSHD), ("v", v_BSHD)):
        if x.ndim != 4:
            raise DlxError(f"{name} has shape {tuple(x.shape)}; expected rank 4 "
                           f"(batch, length, heads, head_dim)")
    if q_BTHD.shape[3] != k_BSHD.shape[3]:
        raise DlxError(f"q head dim {q_BTHD.shape[3]} != k head dim {k_BSHD.shape[3]}; "
                       f"expected q and k to share D")
    if k_BSHD.shape[:3] != v_BSHD.shape[:3]:
        raise DlxError(f"k has shape {k_BSHD.shape} and v {v_BSHD.shape}; expected equal "
                       f"(batch, length, heads)")
    if (q_BTHD.shape[0], q_BTHD.shape[2]) != (k_BSHD.shape[0], k_BSHD.shape[2]):
        raise DlxError(f"q has shape {q_BTHD.shape} and k {k_BSHD.shape}; expected equal "
                       f"batch and heads")


def _at_least_f32(*arrays: jax.Array) -> jnp.dtype:
    """The arrays' common dtype promoted to at least float32 (bf16 -> f32, f64 stays)."""
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def masked_softmax(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Softmax (>= float32) over the last axis where `mask` (broadcastable) is True; masked -> 0."""
    logits = logits.astype(_at_least_f32(logits))
    if mask is None:
        return jax.nn.softmax(logits, axis=-1)
    weights = jax.nn.softmax(jnp.where(mask, logits, _MASK_VALUE), axis=-1)
    return jnp.where(mask, weights, 0.0)  # Zeroes fully masked rows, which came out uniform.


def attention_weights(q_BTHD: jax.Array, k_BSHD: jax.Array, mask: jax.Array | None = None,
                      bias: jax.Array | None = None) -> jax.Array:
    """Weights `(B, H, T, S)` (>= float32) = softmax(q·k / sqrt(D) + bias) over unmasked keys."""
    return _weights("bthd,bshd->bhts", q_BTHD, k_BSHD, mask, bias)


def _weights(spec: str, q: jax.Array, k: jax.Array, mask: jax.Array | None,
             bias: jax.Array | None) -> jax.Array:
    """softmax(einsum(spec, q, k) / sqrt(D) + bias) over unmasked keys, >= float32."""
    dtype = _at_least_f32(q, k)
    logits = jnp.einsum(spec, q, k, preferred_element_type=dtype)
    logits = logits / np.sqrt(q.shape[-1]).astype(dtype)
    if bias is not None:
        logits = logits + bias.astype(dtype)
    return masked_softmax(logits, mask)


def _attend(specs: tuple[str, str], q: jax.Array, k: jax.Array, v: jax.Array,
            mask: jax.Array | None, bias: jax.Array | None, keep: jax.Array | None,
            dropout_rate: float) -> jax.Array:
    """Weights from `specs[0]`, dropped where not `keep`, summed over `v` by `specs[1]`."""
    weights = _weights(specs[0], q, k, mask, bias)
    if keep is not None:
        weights = dropout.apply_keep_mask(keep, dropout_rate, weights)
    dtype = jnp.result_type(q, k, v)
    return jnp.einsum(specs[1], weights.astype(dtype), v,
                      preferred_element_type=_at_least_f32(v)).astype(dtype)


def _per_head() -> bool:
    """Attend head by head? On CPU: XLA:CPU batches (B, H) products through transposed copies of
    q, k and v, and per-head (B, T, D) slices ran attention forward + backward 25-35 % faster
    (B 8-32, H 4-12, T 128; 12 % at T 512); GPUs keep one batched product."""
    return jax.default_backend() == "cpu"


def _head(x: jax.Array | None, h: int) -> jax.Array | None:
    """Head `h` of a rank-4 mask, bias or keep mask broadcastable to (B, H, T, S) -> rank 3."""
    return None if x is None else x[:, h if x.shape[1] > 1 else 0]


def dot_product_attention(q_BTHD: jax.Array, k_BSHD: jax.Array, v_BSHD: jax.Array,
                          mask: jax.Array | None = None, bias: jax.Array | None = None, *,
                          dropout_rate: float = 0.0, dropout_rng: jax.Array | None = None,
                          deterministic: bool = True, use_fused: bool = False,
                          implementation: str | None = None) -> jax.Array:
    """Scaled dot-product attention `(q_BTHD, k_BSHD, v_BSHD)` -> `out_BTHD`.

    `mask` (bool, True = attend) and `bias` (added to the scaled logits) are rank 4, broadcastable
    to `(B, H, T, S)`. Dropout (rate `dropout_rate`, needs `dropout_rng`) drops attention weights
    unless `deterministic`. `use_fused` calls `jax.nn.dot_product_attention` with
    `implementation` (None: XLA; "cudnn": flash attention on GPU), which has no dropout.
    """
    _check_qkv(q_BTHD, k_BSHD, v_BSHD)
    batch, length_q, heads, _ = q_BTHD.shape
    shape_BHTS = (batch, heads, length_q, k_BSHD.shape[1])
    _check_mask(mask, shape_BHTS, "(B, H, T, S)")
    if bias is not None:
        _check_broadcastable("bias", bias, shape_BHTS, "(B, H, T, S)")
    if implementation not in IMPLEMENTATIONS:
        raise DlxError(f"implementation={implementation!r} is unknown; expected one of "
                       f"{IMPLEMENTATIONS}")
    if not 0.0 <= dropout_rate < 1.0:
        raise DlxError(f"dropout_rate={dropout_rate} is invalid; expected 0 <= rate < 1")
    use_dropout = not deterministic and dropout_rate > 0
    dtype = jnp.result_type(q_BTHD, k_BSHD, v_BSHD)
    if use_fused:
        if use_dropout:
            raise DlxError("use_fused=True has no attention dropout; expected dropout_rate=0 or "
                           "deterministic=True")
        out_BTHD = jax.nn.dot_product_attention(q_BTHD, k_BSHD, v_BSHD, bias=bias, mask=mask,
                                                implementation=implementation)
        if mask is None:
            return out_BTHD.astype(dtype)
        any_BTH1 = jnp.transpose(jnp.any(mask, axis=-1, keepdims=True), (0, 2, 1, 3))
        return jnp.where(any_BTH1, out_BTHD, 0).astype(dtype)
    if implementation is not None:
        raise DlxError(f"implementation={implementation!r} applies only with use_fused=True")
    keep_BHTS = None
    if use_dropout:
        if dropout_rng is None:
            raise DlxError("attention dropout needs dropout_rng; got None")
        keep_BHTS = dropout.keep_mask(dropout_rng, dropout_rate, shape_BHTS)
    if not _per_head():
        return _attend(("bthd,bshd->bhts", "bhts,bshd->bthd"), q_BTHD, k_BSHD, v_BSHD, mask,
                       bias, keep_BHTS, dropout_rate)
    return jnp.stack([_attend(("btd,bsd->bts", "bts,bsd->btd"), q_BTHD[:, :, h], k_BSHD[:, :, h],
                              v_BSHD[:, :, h], _head(mask, h), _head(bias, h),
                              _head(keep_BHTS, h), dropout_rate)
                      for h in range(heads)], axis=2)


def causal_mask(length: int) -> jax.Array:
    """`(1, 1, T, T)` bool: query t attends to keys s <= t."""
    return jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]


def padding_mask(valid: jax.Array, length: int | None = None, *,
                 mask_queries: bool = False) -> jax.Array:
    """Lengths `lengths_B` (pad to `length`) or a bool `valid_BS` -> key mask `(B, 1, 1, S)`.

    Right padding with lengths: positions `s < lengths[b]` are real. With `mask_queries`
    (self-attention, T = S) padded query rows are masked too, giving `(B, 1, S, S)`.
    """
    valid = jnp.asarray(valid)
    if valid.ndim == 1:
        if not jnp.issubdtype(valid.dtype, jnp.integer) or length is None:
            raise DlxError(f"padding_mask got a rank-1 {valid.dtype} array with length={length}; "
                           f"expected integer lengths_B and the padded length")
        valid = jnp.arange(length)[None, :] < valid[:, None]
    elif valid.ndim != 2 or valid.dtype != jnp.bool_:
        raise DlxError(f"padding_mask got shape {tuple(valid.shape)} and dtype {valid.dtype}; "
                       f"expected integer lengths_B or a bool valid_BS")
    keys_B11S = valid[:, None, None, :]
    return keys_B11S & valid[:, None, :, None] if mask_queries else keys_B11S


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
    """Logical AND of rank-4 bool masks (None entries skipped), broadcast; None if all are None."""
    present = [jnp.asarray(m) for m in masks if m is not None]
    for mask in present:
        if mask.ndim != 4 or mask.dtype != jnp.bool_:
            raise DlxError(f"combine_masks got shape {tuple(mask.shape)} and dtype {mask.dtype}; "
                           f"expected a rank-4 bool mask")
    return functools.reduce(jnp.logical_and, present) if present else None


class AdditiveAttention(nn.Module):
    """Bahdanau attention `(query_BTQ, keys_BSK)` -> `(context_BTK, weights_BTS)`.

    score(s_t, h_s) = vᵀ tanh(W_s s_t + W_h h_s), weights = softmax over s of the scores and
    context_t = Σ_s α_ts h_s. `hidden` is the width of the tanh layer; the params are Dense
    kernels `query` (Q, A) = W_sᵀ, `key` (K, A) = W_hᵀ and `score` (A, 1) = v, without biases.
    `mask` is bool, True = attend, broadcastable to `(B, T, S)`; fully masked rows give zeros.
    One decoder step is T = 1.
    """
    hidden: int
    kernel_init: Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, query_BTQ: jax.Array, keys_BSK: jax.Array,
                 mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        if query_BTQ.ndim != 3 or keys_BSK.ndim != 3 or query_BTQ.shape[0] != keys_BSK.shape[0]:
            raise DlxError(f"AdditiveAttention got query {tuple(query_BTQ.shape)} and keys "
                           f"{tuple(keys_BSK.shape)}; expected (B, T, Q) and (B, S, K)")
        batch, length_q, length_k = query_BTQ.shape[0], query_BTQ.shape[1], keys_BSK.shape[1]
        _check_mask(mask, (batch, length_q, length_k), "(B, T, S)")
        dense = functools.partial(nn.Dense, self.hidden, use_bias=False,
                                  kernel_init=self.kernel_init)
        s_BT1A = dense(name="query")(query_BTQ)[:, :, None, :]
        h_B1SA = dense(name="key")(keys_BSK)[:, None, :, :]
        scores_BTS = nn.Dense(1, use_bias=False, kernel_init=self.kernel_init,
                              name="score")(jnp.tanh(s_BT1A + h_B1SA))[..., 0]
        weights_BTS = masked_softmax(scores_BTS, mask)
        context_BTK = jnp.einsum("bts,bsk->btk", weights_BTS.astype(keys_BSK.dtype), keys_BSK)
        return context_BTK, weights_BTS


class MultiHeadAttention(nn.Module):
    """Multi-head attention `(inputs_q_BTM, inputs_kv_BSM or None for self)` -> `(B, T, M_out)`.

    q, k, v = Dense `query`/`key`/`value` (kernels `(M, H·D)`, biases `(H·D,)`), split into H
    heads of D = `head_dim` (default M // H), attended with `dot_product_attention`, merged back
    to `(B, T, H·D)` and projected by Dense `out` (kernel `(H·D, M_out)`, M_out =
    `out_features` or M). `dropout` drops attention weights when `train` (needs a `dropout` rng).
    """
    num_heads: int
    head_dim: int | None = None
    out_features: int | None = None
    dropout: float = 0.0
    use_bias: bool = True
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros
    use_fused: bool = False
    implementation: str | None = None

    @nn.compact
    def __call__(self, inputs_q_BTM: jax.Array, inputs_kv_BSM: jax.Array | None = None,
                 mask: jax.Array | None = None, bias: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array:
        inputs_kv_BSM = inputs_q_BTM if inputs_kv_BSM is None else inputs_kv_BSM
        if (inputs_q_BTM.ndim != 3 or inputs_kv_BSM.ndim != 3
                or inputs_q_BTM.shape[0] != inputs_kv_BSM.shape[0]):
            raise DlxError(f"MultiHeadAttention got inputs_q {tuple(inputs_q_BTM.shape)} and "
                           f"inputs_kv {tuple(inputs_kv_BSM.shape)}; expected (B, T, M) and "
                           f"(B, S, M_kv)")
        model_dim = inputs_q_BTM.shape[-1]
        if self.head_dim is None and (self.num_heads < 1 or model_dim % self.num_heads):
            raise DlxError(f"num_heads={self.num_heads} does not divide the model dim "
                           f"{model_dim}; expected a divisor or an explicit head_dim")
        head_dim = self.head_dim or model_dim // self.num_heads
        dense = functools.partial(nn.Dense, self.num_heads * head_dim, use_bias=self.use_bias,
                                  kernel_init=self.kernel_init, bias_init=self.bias_init,
                                  dot_general=mixed_dot.dot_general)

        def heads(x_BLF: jax.Array) -> jax.Array:
            return x_BLF.reshape(x_BLF.shape[:2] + (self.num_heads, head_dim))

        q_BTHD = heads(dense(name="query")(inputs_q_BTM))
        k_BSHD = heads(dense(name="key")(inputs_kv_BSM))
        v_BSHD = heads(dense(name="value")(inputs_kv_BSM))
        use_dropout = train and self.dropout > 0
        out_BTHD = dot_product_attention(
            q_BTHD, k_BSHD, v_BSHD, mask, bias, dropout_rate=self.dropout,
            dropout_rng=self.make_rng("dropout") if use_dropout else None,
            deterministic=not train, use_fused=self.use_fused,
            implementation=self.implementation)
        out_BTF = out_BTHD.reshape(out_BTHD.shape[:2] + (-1,))
        return nn.Dense(self.out_features or model_dim, use_bias=self.use_bias,
                        kernel_init=self.kernel_init, bias_init=self.bias_init,
                        dot_general=mixed_dot.dot_general, name="out")(out_BTF)

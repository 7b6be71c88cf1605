"""Transformer blocks and stacks (Vaswani et al. 2017) with BERT's post-LN or a pre-LN option.

Post-LN (`pre_ln=False`, BERT and the original Transformer), per block::

    x = LN(x + Dropout(SelfAttention(x)))      [x = LN(x + Dropout(CrossAttention(x, enc)))]
    x = LN(x + MLP(x))                          MLP(x) = Dropout(W_2 GELU(W_1 x + b_1) + b_2)

Pre-LN (`pre_ln=True`, GPT-2 style) normalises each branch's input instead, `x = x + Dropout(
SelfAttention(LN(x)))`, ..., and the stack ends with one more LayerNorm (`final_norm`). The
cross-attention line exists only in a `DecoderBlock` given an encoder output, and a decoder's
self-attention is always causal. GELU is the exact erf form (BERT) unless `approximate_gelu`.

Params, for layers k = 0 … num_layers - 1: `layer_{k}/{attention, attention_norm, mlp,
mlp_norm}` in an `Encoder`; `layer_{k}/{self_attention, self_attention_norm, cross_attention,
cross_attention_norm, mlp, mlp_norm}` in a `Decoder`; attentions are `MultiHeadAttention` (Dense
`query`, `key`, `value`, `out`), MLPs Dense `intermediate` (M, mlp_dim) and `output` (mlp_dim, M), norms flax LayerNorms
(`scale`, `bias`). Kernels default to Xavier uniform, as torch's `nn.Transformer` and flax's
examples initialise them. A stack adds `position_embedding/embedding` (max_length, M) with learned
positions and `final_norm` when pre-LN.

With `remat=True` a stack called with `train=True` wraps each block in `nn.remat` (gradient
checkpointing): the backward pass recomputes a block's activations from its input instead of
keeping them, trading about one more forward pass for activation memory; params, outputs and
gradients are unchanged. Calls with `train=False` run the blocks plain, so method interception
(attention maps, `dlx explain`) still sees concrete values there; `remat_last=False` keeps the
last block plain in training too, for a caller that intercepts inside it.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError
from dlx.nn import activations, mixed_dot
from dlx.nn.attention import MultiHeadAttention, causal_mask, combine_masks
from dlx.nn.dropout import Dropout
from dlx.train import sharding

Initializer = Callable[..., jax.Array]
POSITIONS = ("sinusoidal", "learned", "none")


def sinusoidal_positions(length: int, features: int) -> jax.Array:
    """`(T, M)` float32: PE[t, 2i] = sin(t / 10000^(2i/M)), PE[t, 2i+1] = cos(the same)."""
    if length < 1 or features < 2 or features % 2:
        raise DlxError(f"sinusoidal_positions(length={length}, features={features}) is invalid; "
                       f"expected a positive length and an even features >= 2")
    angles_TI = np.arange(length)[:, None] / 10000.0 ** (np.arange(0, features, 2) / features)
    pe_TM = np.stack([np.sin(angles_TI), np.cos(angles_TI)], axis=-1).reshape(length, features)
    return jnp.asarray(pe_TM, jnp.float32)


class TransformerMLP(nn.Module):
    """Position-wise MLP `x_BTM` -> `y_BTM`: Dropout(Dense(GELU(Dense(x)))), `hidden` wide."""
    hidden: int
    dropout: float = 0.0
    approximate_gelu: bool = False
    kernel_init: Initializer = nn.initializers.xavier_uniform()

    @nn.compact
    def __call__(self, x_BTM: jax.Array, *, train: bool = False) -> jax.Array:
        h_BTF = nn.Dense(self.hidden, kernel_init=self.kernel_init,
                         dot_general=mixed_dot.dot_general, name="intermediate")(x_BTM)
        h_BTF = activations.gelu(h_BTF, approximate=self.approximate_gelu)
        y_BTM = nn.Dense(x_BTM.shape[-1], kernel_init=self.kernel_init,
                         dot_general=mixed_dot.dot_general, name="output")(h_BTF)
        return Dropout(self.dropout, deterministic=not train)(y_BTM)


class _Layer(nn.Module):
    """Hyperparameters shared by blocks and stacks; `_sublayer` runs one residual branch."""
    num_heads: int
    mlp_dim: int
    dropout: float = 0.0
    attention_dropout: float = 0.0
    pre_ln: bool = False
    layer_norm_epsilon: float = 1e-6
    approximate_gelu: bool = False
    kernel_init: Initializer = nn.initializers.xavier_uniform()
    use_fused: bool = False

    def _block_kwargs(self) -> dict:
        """The fields a stack passes on to each of its blocks."""
        return {name: getattr(self, name) for name in _Layer.__dataclass_fields__
                if name not in ("parent", "name")}

    def _norm(self, name: str) -> nn.LayerNorm:
        return nn.LayerNorm(epsilon=self.layer_norm_epsilon, name=name)

    def _sublayer(self, name: str, branch: Callable[[jax.Array], jax.Array],
                  x_BTM: jax.Array) -> jax.Array:
        """`LN(x + branch(x))`, or `x + branch(LN(x))` when `pre_ln`; the norm is `{name}_norm`."""
        norm = self._norm(f"{name}_norm")
        if self.pre_ln:
            return sharding.constrain_batch(x_BTM + branch(norm(x_BTM)))
        return sharding.constrain_batch(norm(x_BTM + branch(x_BTM)))

    def _attention_sublayer(self, name: str, x_BTM: jax.Array, inputs_kv_BSM: jax.Array | None,
                            mask: jax.Array | None, train: bool) -> jax.Array:
        """The residual branch Dropout(MultiHeadAttention `name`(x, inputs_kv or x, mask))."""
        attention = MultiHeadAttention(self.num_heads, dropout=self.attention_dropout,
                                       kernel_init=self.kernel_init, use_fused=self.use_fused,
                                       name=name)
        return self._sublayer(
            name, lambda h: self._dropout(attention(h, inputs_kv_BSM, mask, train=train), train),
            x_BTM)

    def _mlp_sublayer(self, x_BTM: jax.Array, train: bool) -> jax.Array:
        mlp = TransformerMLP(self.mlp_dim, self.dropout, self.approximate_gelu, self.kernel_init,
                             name="mlp")
        return self._sublayer("mlp", lambda h: mlp(h, train=train), x_BTM)

    def _dropout(self, x: jax.Array, train: bool) -> jax.Array:
        return Dropout(self.dropout, deterministic=not train)(x)


def _cast_floats(tree, dtype: jnp.dtype):
    """`tree` with its floating leaves cast to `dtype`."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                        else x, tree)


def computing_in(stack_cls: type[nn.Module], dtype: jnp.dtype, initializing: bool):
    """`stack_cls` (Encoder or Decoder) whose params stay float32 but are read cast to `dtype`,
    so its matmuls run in `dtype`; `stack_cls` itself for float32."""
    if dtype == jnp.float32:
        return stack_cls
    return nn.map_variables(stack_cls, "params", trans_in_fn=lambda v: _cast_floats(v, dtype),
                            trans_out_fn=lambda v: _cast_floats(v, jnp.float32),
                            init=initializing)


class EncoderBlock(_Layer):
    """Bidirectional block `x_BTM` -> `y_BTM`; bool `mask` (True = attend) fits (B, H, T, T)."""

    @nn.compact
    def __call__(self, x_BTM: jax.Array, mask: jax.Array | None = None,
                 train: bool = False) -> jax.Array:
        x_BTM = self._attention_sublayer("attention", x_BTM, None, mask, train)
        return self._mlp_sublayer(x_BTM, train)


class DecoderBlock(_Layer):
    """Causal block `(x_BTM, encoded_BSM or None)` -> `y_BTM`, cross-attending when encoded."""

    @nn.compact
    def __call__(self, x_BTM: jax.Array, encoded_BSM: jax.Array | None = None,
                 mask: jax.Array | None = None, cross_mask: jax.Array | None = None,
                 train: bool = False) -> jax.Array:
        """`mask` (B, H, T, T) is ANDed with the causal mask; `cross_mask` is (B, H, T, S)."""
        self_mask = combine_masks(causal_mask(x_BTM.shape[1]), mask)
        x_BTM = self._attention_sublayer("self_attention", x_BTM, None, self_mask, train)
        if encoded_BSM is not None:
            x_BTM = self._attention_sublayer("cross_attention", x_BTM, encoded_BSM, cross_mask,
                                             train)
        return self._mlp_sublayer(x_BTM, train)


class _Stack(_Layer):
    """Positions and input dropout before `num_layers` blocks; a final LayerNorm when pre-LN.

    `positions`: "sinusoidal" adds `sinusoidal_positions` (no params); "learned" adds rows of a
    `(max_length, M)` table drawn from N(0, 0.02); "none" adds nothing (the caller embeds
    positions itself, as BERT's embedding layer does).
    """
    num_layers: int = 1
    positions: str = "sinusoidal"
    max_length: int = 512
    remat: bool = False
    remat_last: bool = True

    def _block_class(self, block: type[_Layer], layer: int, train: bool,
                     train_argnum: int) -> type[_Layer]:
        """`block`, or its `nn.remat` for layer `layer` when `remat` applies (module docstring);
        `train`, positional argument `train_argnum` (self being 0), stays a Python bool."""
        last = layer == self.num_layers - 1
        if self.remat and train and (self.remat_last or not last):
            return nn.remat(block, static_argnums=(train_argnum,))
        return block

    def _embed_positions(self, x_BTM: jax.Array, train: bool) -> jax.Array:
        """`x_BTM` + positions (per `positions`), then dropout."""
        if self.positions not in POSITIONS:
            raise DlxError(f"positions={self.positions!r} is unknown; expected one of: "
                           f"{', '.join(POSITIONS)}")
        if x_BTM.ndim != 3:
            raise DlxError(f"{type(self).__name__} input has shape {tuple(x_BTM.shape)}; "
                           f"expected (batch, length, model dim)")
        length, features = x_BTM.shape[1:]
        if self.positions == "sinusoidal":
            x_BTM = x_BTM + sinusoidal_positions(length, features)[None].astype(x_BTM.dtype)
        elif self.positions == "learned":
            if length > self.max_length:
                raise DlxError(f"sequence length {length} exceeds max_length={self.max_length} "
                               f"of the learned positions")
            table = nn.Embed(self.max_length, features, name="position_embedding",
                             embedding_init=nn.initializers.normal(0.02))
            x_BTM = x_BTM + table(jnp.arange(length))[None].astype(x_BTM.dtype)
        return self._dropout(x_BTM, train)

    def _finish(self, x_BTM: jax.Array) -> jax.Array:
        return self._norm("final_norm")(x_BTM) if self.pre_ln else x_BTM


class Encoder(_Stack):
    """Embeddings `x_BTM` (+ positions) -> `y_BTM` through `num_layers` `EncoderBlock`s."""

    @nn.compact
    def __call__(self, x_BTM: jax.Array, mask: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array:
        x_BTM = self._embed_positions(x_BTM, train)
        for layer in range(self.num_layers):
            block_cls = self._block_class(EncoderBlock, layer, train, train_argnum=3)
            x_BTM = block_cls(**self._block_kwargs(), name=f"layer_{layer}")(x_BTM, mask, train)
        return self._finish(x_BTM)


class Decoder(_Stack):
    """Embeddings `x_BTM` (+ positions), optional `encoded_BSM` -> `y_BTM` via `DecoderBlock`s."""

    @nn.compact
    def __call__(self, x_BTM: jax.Array, encoded_BSM: jax.Array | None = None,
                 mask: jax.Array | None = None, cross_mask: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array:
        x_BTM = self._embed_positions(x_BTM, train)
        for layer in range(self.num_layers):
            block_cls = self._block_class(DecoderBlock, layer, train, train_argnum=5)
            x_BTM = block_cls(**self._block_kwargs(), name=f"layer_{layer}")(
                x_BTM, encoded_BSM, mask, cross_mask, train)
        return self._finish(x_BTM)

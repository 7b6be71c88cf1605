"""GPT-2 (Radford et al. 2019): a causal, decoder-only Transformer language model in flax.

Per token t: `x_t = token_table[id_t] + position_table[t]`, then a pre-LN `Decoder` (GELU in its
tanh form, every self-attention causal, the stack ending in a LayerNorm) and the output layer
tied to the token embedding, `logits_t = h_t · token_tableᵀ` (no output bias), as in GPT-2.
Dropout (rate `dropout`) hits the embedded input and each residual branch, `attention_dropout`
the attention weights, and only with `train=True`. Kernels and both embedding tables are drawn
from N(0, 0.02), biases start at zero; GPT-2's extra 1/sqrt(2·num_layers) scale of the residual
projections is not applied. LayerNorms use GPT-2's epsilon 1e-5.

Params: `token_embedding/embedding` (V, M), `decoder/position_embedding/embedding`
(max_length, M), `decoder/layer_{k}/{self_attention, self_attention_norm, mlp, mlp_norm}` for
k = 0 … num_layers - 1 (see `dlx.nn.transformer`) and `decoder/final_norm`; there is no separate
output kernel.

With `dtype=jnp.bfloat16` params stay float32 and are cast for the matmuls (as in
`dlx.nn.bert`): the decoder's hidden states are bfloat16, attention logits and softmax float32,
and the returned logits float32.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.errors import DlxError
from dlx.nn.attention import padding_mask
from dlx.nn.tied_decoder import TokenNll, tied_logits, tied_token_nll
from dlx.nn.transformer import Decoder, computing_in

DTYPES = (jnp.float32, jnp.bfloat16)

LAYER_NORM_EPSILON = 1e-5  # GPT-2's (HF `layer_norm_epsilon`).
_init = nn.initializers.normal(0.02)


class GPT(nn.Module):
    """`input_ids_BT` (+ `attention_mask_BT`, 1 real / 0 pad) -> float32 logits (B, T, V).

    Position t's logits predict token t + 1 from tokens 0 … t only. Given `labels_BX` (B, X),
    X <= T, the labels of positions 0 … X - 1 (the next tokens: `input_ids_BT[:, 1:]`), it returns
    a `TokenNll` of those positions instead, the output layer fused with the softmax
    cross-entropy (`dlx.nn.tied_decoder.tied_softmax_nll`, no (B, X, V) logits). `use_fused`
    runs attention through `jax.nn.dot_product_attention`, which has no attention dropout, so
    training then needs `attention_dropout=0`. `dtype` is the compute dtype (params stay
    float32); `remat` recomputes each block's activations in the backward pass (`nn.remat`).
    """
    vocab_size: int
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    mlp_dim: int = 512
    max_length: int = 128
    dropout: float = 0.1
    attention_dropout: float = 0.1
    use_fused: bool = False
    dtype: jnp.dtype = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, input_ids_BT: jax.Array, attention_mask_BT: jax.Array | None = None,
                 labels_BX: jax.Array | None = None, *,
                 train: bool = False) -> jax.Array | TokenNll:
        if input_ids_BT.ndim != 2:
            raise DlxError(f"GPT input_ids has shape {tuple(input_ids_BT.shape)}; expected "
                           f"(batch, length)")
        if input_ids_BT.shape[1] > self.max_length:
            raise DlxError(f"GPT input length {input_ids_BT.shape[1]} exceeds max_length="
                           f"{self.max_length}; expected at most max_length tokens")
        if attention_mask_BT is not None and attention_mask_BT.shape != input_ids_BT.shape:
            raise DlxError(f"GPT attention_mask has shape {tuple(attention_mask_BT.shape)}; "
                           f"expected input_ids' {tuple(input_ids_BT.shape)}")
        if self.dtype not in DTYPES:
            raise DlxError(f"GPT dtype={self.dtype!r} is unsupported; expected float32 or "
                           f"bfloat16")
        embed = nn.Embed(self.vocab_size, self.hidden_size, dtype=self.dtype,
                         embedding_init=_init, name="token_embedding")
        mask = None if attention_mask_BT is None else padding_mask(attention_mask_BT.astype(bool))
        decoder = computing_in(Decoder, self.dtype, self.is_initializing())(
            num_heads=self.num_heads, mlp_dim=self.mlp_dim, dropout=self.dropout,
            attention_dropout=self.attention_dropout, pre_ln=True,
            layer_norm_epsilon=LAYER_NORM_EPSILON, approximate_gelu=True, kernel_init=_init,
            use_fused=self.use_fused, num_layers=self.num_layers, positions="learned",
            max_length=self.max_length, remat=self.remat, name="decoder")
        h_BTM = decoder(embed(input_ids_BT), mask=mask, train=train)
        if labels_BX is None:
            return tied_logits(h_BTM, embed.embedding, dtype=self.dtype)
        if (labels_BX.ndim != 2 or labels_BX.shape[0] != input_ids_BT.shape[0]
                or labels_BX.shape[1] > input_ids_BT.shape[1]):
            raise DlxError(f"GPT labels_BX has shape {tuple(labels_BX.shape)}; expected (batch, "
                           f"X) with X <= the input length {input_ids_BT.shape[1]}")
        return tied_token_nll(h_BTM[:, :labels_BX.shape[1]], embed.embedding, None, labels_BX,
                              self.dtype)


"""ELMo (Peters et al. 2018): a bidirectional LSTM language model and its scalar-mixed layers.

Input is word level (the data source's WordPiece ids; no character CNN): `x_t = E[id_t]`, E of
shape (V, H). A forward stack of `num_layers` LSTMs reads tokens 0 … t, a separate backward stack
reads tokens T' - 1 … t (T' the row's length), so the forward LM never sees the future and the
backward LM never sees the past. Layer k > 0 of each stack adds its input back (`residual`, as
ELMo does between its two layers). Both directions share the softmax, tied to the input
embedding: `logits = h · Eᵀ + b` (b a (V,) output bias). Forward position t predicts token
t + 1, backward position t predicts token t - 1. Dropout (rate `dropout`, only with `train=True`)
hits the embedded tokens, every layer's output and nothing else.

`layers` gives ELMo's L + 1 representations (L+1, B, T, 2H): layer 0 is `[x_t, x_t]` (the
context-free token embedding, duplicated), layer k is `[forward_k, backward_k]`; `ScalarMix`
collapses them to `γ Σ_j softmax(w)_j h_j` and `contextual_embeddings` applies both.

Params: `embedding/embedding` (V, H), `output_bias` (V,), `forward_{k}` and `backward_{k}`
(`dlx.nn.rnn.RNN` params of one LSTM layer, `{"l0": cell}`) for k = 0 … num_layers - 1.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.errors import DlxError
from dlx.nn.rnn import RNN, flip_within_lengths


class BiLM(nn.Module):
    """`tokens_BT` (+ `lengths_B`, right padding) -> `(forward_logits_BTV, backward_logits_BTV)`."""
    vocab_size: int
    hidden_size: int = 128
    num_layers: int = 2
    residual: bool = True
    dropout: float = 0.1

    def setup(self):
        if self.hidden_size < 1 or self.num_layers < 1:
            raise DlxError(f"BiLM hidden_size={self.hidden_size} and num_layers="
                           f"{self.num_layers} must both be positive")
        self.embedding = nn.Embed(self.vocab_size, self.hidden_size,
                                  embedding_init=nn.initializers.normal(0.1))
        self.output_bias = self.param("output_bias", nn.initializers.zeros, (self.vocab_size,))
        self.forward_layers = [RNN("lstm", self.hidden_size, name=f"forward_{k}")
                               for k in range(self.num_layers)]
        self.backward_layers = [RNN("lstm", self.hidden_size, name=f"backward_{k}")
                                for k in range(self.num_layers)]
        self.drop = nn.Dropout(self.dropout)

    def _stack(self, rnns: list[RNN], x_BTH: jax.Array, lengths_B: jax.Array,
               real_BT1: jax.Array, train: bool) -> list[jax.Array]:
        """Each layer's outputs `h_BTH` (zero at padding) of one direction's stack over `x_BTH`."""
        outputs = []
        h_BTH = x_BTH
        for k, rnn in enumerate(rnns):
            y_BTH = rnn(h_BTH, lengths_B)
            if self.residual and k > 0:
                y_BTH = (y_BTH + h_BTH) * real_BT1
            h_BTH = self.drop(y_BTH, deterministic=not train)
            outputs.append(y_BTH)
        return outputs

    def _run(self, tokens_BT: jax.Array, lengths_B: jax.Array | None,
             train: bool) -> tuple[jax.Array, list[jax.Array], list[jax.Array]]:
        """(embedded tokens x_BTH, forward layer outputs, backward layer outputs), unflipped."""
        tokens_BT = jnp.asarray(tokens_BT)
        if tokens_BT.ndim != 2:
            raise DlxError(f"BiLM tokens have shape {tuple(tokens_BT.shape)}; expected "
                           f"(batch, length)")
        batch, steps = tokens_BT.shape
        if lengths_B is None:
            lengths_B = jnp.full((batch,), steps, jnp.int32)
        lengths_B = jnp.asarray(lengths_B)
        if lengths_B.shape != (batch,):
            raise DlxError(f"BiLM lengths have shape {tuple(lengths_B.shape)}; expected "
                           f"({batch},), one per row")
        lengths_B = jnp.clip(lengths_B.astype(jnp.int32), 0, steps)
        real_BT1 = (jnp.arange(steps)[None, :] < lengths_B[:, None])[:, :, None]
        x_BTH = self.embedding(tokens_BT) * real_BT1
        dropped_BTH = self.drop(x_BTH, deterministic=not train)
        forward = self._stack(self.forward_layers, dropped_BTH, lengths_B, real_BT1, train)
        backward_flipped = self._stack(self.backward_layers,
                                       flip_within_lengths(dropped_BTH, lengths_B), lengths_B,
                                       real_BT1, train)
        backward = [flip_within_lengths(h_BTH, lengths_B) for h_BTH in backward_flipped]
        return x_BTH, forward, backward

    def logits(self, h_BTH: jax.Array) -> jax.Array:
        """Top-layer states `h_BTH` -> float32 `logits_BTV` through the tied softmax."""
        return (self.embedding.attend(h_BTH)
                + self.output_bias.reshape(1, 1, -1)).astype(jnp.float32)

    def __call__(self, tokens_BT: jax.Array, lengths_B: jax.Array | None = None, *,
                 train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Forward logits (B, T, V) at t predict token t + 1, backward logits at t token t - 1."""
        _, forward, backward = self._run(tokens_BT, lengths_B, train)
        drop = lambda h_BTH: self.drop(h_BTH, deterministic=not train)
        return self.logits(drop(forward[-1])), self.logits(drop(backward[-1]))

    def layers(self, tokens_BT: jax.Array, lengths_B: jax.Array | None = None) -> jax.Array:
        """ELMo's representations (L+1, B, T, 2H): `[x, x]`, then `[forward_k, backward_k]`."""
        x_BTH, forward, backward = self._run(tokens_BT, lengths_B, False)
        return jnp.stack([jnp.concatenate([x_BTH, x_BTH], -1)]
                         + [jnp.concatenate(pair, -1) for pair in zip(forward, backward)])


class ScalarMix(nn.Module):
    """`layers_LBTD` -> `γ Σ_j softmax(w)_j layers_j` (B, T, D); w starts at 0, γ at 1."""

    @nn.compact
    def __call__(self, layers_LBTD: jax.Array) -> jax.Array:
        weights_L = self.param("weights", nn.initializers.zeros, (layers_LBTD.shape[0],))
        gamma = self.param("gamma", nn.initializers.ones, ())
        return gamma * jnp.tensordot(jax.nn.softmax(weights_L), layers_LBTD, axes=1)


def contextual_embeddings(model: BiLM, params: Any, tokens_BT: jax.Array,
                          lengths_B: jax.Array | None = None,
                          mix_params: Any | None = None) -> jax.Array:
    """ELMo vectors (B, T, 2H): the `ScalarMix` (`mix_params`, default w = 0, γ = 1) of layers."""
    layers_LBTD = model.apply({"params": params}, tokens_BT, lengths_B, method=BiLM.layers)
    mix = ScalarMix()
    if mix_params is None:
        mix_params = mix.init(jax.random.PRNGKey(0), layers_LBTD)["params"]
    return mix.apply({"params": mix_params}, layers_LBTD)

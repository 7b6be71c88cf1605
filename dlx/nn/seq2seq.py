"""Encoder–decoder models with attention, and greedy and beam-search decoding in jitted loops.

Two models share one interface; B batch rows, S source steps, T target steps, V vocabulary:

- `__call__(src_BS, src_lengths_B, tgt_in_BT, *, train)` -> `(logits_BTV, attention_BTS)`:
  teacher forcing, step t predicts target token t from `tgt_in` tokens 0 … t (BOS first) and
  the whole source; `attention_BTS` is what step t attends to (zero at padded source steps).
- `encode(src_BS, src_lengths_B)` -> `Memory`; `init_carry(memory, max_length)` -> the decoder
  state before its first step; `decode_step(memory, carry, token_B)` -> `(logits_BV,
  attention_BS, carry)`: one decoder step on the previous token, equal to `__call__`'s step.

`Seq2Seq` (recurrent, after Luong et al. 2015's global attention): an LSTM/GRU encoder
(`dlx.nn.rnn.RNN`, right-padded `src_lengths`, optionally bidirectional) reads the embedded
source into states `keys_BSE` (E = D·H). Its final states (both directions of the last layer)
go through `bridge`, `summary_BH = tanh(W [h_fwd; h_bwd] + b)`, which joins the embedded target
token at every decoder step (as the context of Cho et al. 2014): decoder inputs are
`[embed(y_{t-1}); summary]`, so the decoder knows the source even with `attention="none"`. A
unidirectional LSTM/GRU decoder (zero initial state) gives `h_t`; attention scores `h_t`
against every real source step, `attention="additive"` with `AdditiveAttention` (Bahdanau's
vᵀ tanh(W_s h_t + W_h h_s)) or `"dot"` with Luong's general score (`h_t · W_k h_s / √H`
through `attention_weights`); the context `c_t = Σ_s α_ts h_s` makes the attentional state
`tanh(W_c [h_t; c_t] + b_c)` and `logits_t = W_o (that) + b_o`. With `"none"`, `logits_t =
W_o h_t + b_o` and the attention is all zeros. Because the attention comes after the cell
(no input feeding), teacher forcing runs the decoder as one `RNN` call and the attention for
all T steps at once. Params: `src_embed`, `tgt_embed` (V, M), `encoder`, `decoder` (`RNN`
params `l{k}[_reverse]`), `bridge`, `attention` (additive: `query`, `key`, `score`; dot:
`key`), `combine`, `output`.

`TransformerSeq2Seq` (Vaswani et al. 2017): token embeddings plus sinusoidal positions into a
pre-LN `dlx.nn.transformer.Encoder` and a causal `Decoder` that cross-attends to it, then
`output`. Its attention map is the last decoder layer's cross-attention weights averaged over
the heads, recomputed from that layer's query and key projections (captured with
`flax.linen.intercept_methods`) with the same `attention_weights` the layer uses. A decoder step
writes the token into a `(B, max_length)` buffer and runs the causal decoder over it, reading
position t (no KV cache, as `dlx.generate`).

Decoding (`greedy_decode`, `beam_search`; cores `greedy_loop`, `beam_loop` take any step
function) fills fixed `(B, L)` buffers inside one jitted `lax.while_loop` and returns
`(tokens_BL, lengths_B, scores_B)`: the tokens after BOS up to and including EOS, PAD after it,
`lengths_B` counting EOS (L when a row never emits it) and the sequence's log-probability
(beam search: divided by the length penalty ((5 + length) / 6)^α of Wu et al. 2016).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlx.errors import DlxError
from dlx.nn.attention import AdditiveAttention, attention_weights, padding_mask
from dlx.nn.rnn import CELLS, RNN
from dlx.nn.transformer import Decoder, Encoder

ATTENTIONS = ("additive", "dot", "none")
# `step_fn(carry, token_B) -> (logits_BV, carry)`: one decoder step of a batch of rows.
StepFn = Callable[[Any, jax.Array], tuple[jax.Array, Any]]


class Memory(NamedTuple):
    """What the decoder reads of an encoded source (a pytree; rows are batch rows)."""
    keys_BSE: jax.Array  # Encoder states attended to.
    mask_BS: jax.Array  # True at real source steps.
    summary_BH: jax.Array | None  # The recurrent model's bridged final state; None otherwise.


def _check_inputs(src_BS: jax.Array, src_lengths_B: jax.Array, tgt_in_BT: jax.Array | None,
                  vocab_size: int) -> None:
    """One-line DlxError unless the shapes and dtypes are those of the module docstring."""
    if src_BS.ndim != 2 or src_lengths_B.shape != src_BS.shape[:1]:
        raise DlxError(f"seq2seq got src {tuple(src_BS.shape)} and src_lengths "
                       f"{tuple(src_lengths_B.shape)}; expected (B, S) and (B,)")
    if tgt_in_BT is not None and (tgt_in_BT.ndim != 2 or tgt_in_BT.shape[0] != src_BS.shape[0]):
        raise DlxError(f"seq2seq got tgt_in {tuple(tgt_in_BT.shape)} for src "
                       f"{tuple(src_BS.shape)}; expected (B, T) with the same B")
    for name, x in (("src", src_BS), ("src_lengths", src_lengths_B), ("tgt_in", tgt_in_BT)):
        if x is not None and not jnp.issubdtype(x.dtype, jnp.integer):
            raise DlxError(f"seq2seq {name} has dtype {x.dtype}; expected integer token ids")
    if vocab_size < 2:
        raise DlxError(f"seq2seq vocab_size={vocab_size}; expected at least 2 tokens")


class Seq2Seq(nn.Module):
    """Recurrent encoder–decoder with `attention` over the encoder states (module docstring)."""
    vocab_size: int
    embed_dim: int = 32
    hidden_size: int = 128
    cell_type: str = "lstm"
    num_layers: int = 1
    bidirectional: bool = True
    attention: str = "additive"
    attention_dim: int = 64
    dropout: float = 0.0

    def setup(self):
        if self.attention not in ATTENTIONS:
            raise DlxError(f"attention={self.attention!r} is unknown; expected one of: "
                           f"{', '.join(ATTENTIONS)}")
        if self.cell_type not in CELLS:
            raise DlxError(f"cell_type={self.cell_type!r} is not a known RNN cell; expected "
                           f"one of: {', '.join(CELLS)}")
        self.src_embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.tgt_embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.encoder = RNN(self.cell_type, self.hidden_size, self.num_layers, self.bidirectional,
                           dropout=self.dropout)
        self.bridge = nn.Dense(self.hidden_size)
        self.decoder = RNN(self.cell_type, self.hidden_size, self.num_layers, dropout=self.dropout)
        if self.attention == "additive":
            self.attend = AdditiveAttention(self.attention_dim, name="attention")
        elif self.attention == "dot":
            self.attend = nn.Dense(self.hidden_size, use_bias=False, name="attention")
        self.combine = nn.Dense(self.hidden_size)
        self.output = nn.Dense(self.vocab_size)
        self.drop = nn.Dropout(self.dropout)

    def encode(self, src_BS: jax.Array, src_lengths_B: jax.Array, *,
               train: bool = False) -> Memory:
        """Source ids (B, S) right-padded to `src_lengths_B` -> `Memory` (keys (B, S, D·H))."""
        _check_inputs(src_BS, src_lengths_B, None, self.vocab_size)
        x_BSM = self.drop(self.src_embed(src_BS), deterministic=not train)
        keys_BSE, states = self.encoder.outputs_and_states(x_BSM, src_lengths_B, train=train)
        directions = 1 + self.bidirectional
        final = [state[0] if isinstance(state, tuple) else state
                 for state in states[-directions:]]
        summary_BH = jnp.tanh(self.bridge(jnp.concatenate(final, axis=-1)))
        mask_BS = jnp.arange(src_BS.shape[1])[None, :] < src_lengths_B[:, None]
        return Memory(keys_BSE, mask_BS, summary_BH)

    def _attend(self, memory: Memory, h_BTH: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Decoder states `h_BTH` -> `(logits_BTV, attention_BTS)` through the attention."""
        batch, steps = h_BTH.shape[:2]
        if self.attention == "none":
            return self.output(h_BTH), jnp.zeros((batch, steps, memory.keys_BSE.shape[1]))
        mask_BTS = jnp.broadcast_to(memory.mask_BS[:, None, :],
                                    (batch, steps, memory.mask_BS.shape[1]))
        if self.attention == "additive":
            context_BTE, weights_BTS = self.attend(h_BTH, memory.keys_BSE, mask_BTS)
        else:
            k_BS1H = self.attend(memory.keys_BSE)[:, :, None, :]
            weights_BTS = attention_weights(h_BTH[:, :, None, :], k_BS1H,
                                            mask_BTS[:, None])[:, 0]
            context_BTE = jnp.einsum("bts,bse->bte", weights_BTS, memory.keys_BSE)
        attentional_BTH = jnp.tanh(self.combine(jnp.concatenate([h_BTH, context_BTE], -1)))
        return self.output(attentional_BTH), weights_BTS

    def __call__(self, src_BS: jax.Array, src_lengths_B: jax.Array, tgt_in_BT: jax.Array, *,
                 train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Teacher forcing: `(src_BS, src_lengths_B, tgt_in_BT)` -> `(logits_BTV, attn_BTS)`."""
        _check_inputs(src_BS, src_lengths_B, tgt_in_BT, self.vocab_size)
        memory = self.encode(src_BS, src_lengths_B, train=train)
        y_BTM = self.drop(self.tgt_embed(tgt_in_BT), deterministic=not train)
        summary_BTH = jnp.broadcast_to(memory.summary_BH[:, None, :],
                                       y_BTM.shape[:2] + memory.summary_BH.shape[-1:])
        h_BTH = self.decoder(jnp.concatenate([y_BTM, summary_BTH], -1), train=train)
        return self._attend(memory, self.drop(h_BTH, deterministic=not train))

    def init_carry(self, memory: Memory, max_length: int) -> tuple:
        """The decoder's zero state per layer (`(h_BH, c_BH)` LSTM, `h_BH` GRU); `max_length`
        is unused (a recurrent step needs no buffer)."""
        del max_length
        zeros_BH = jnp.zeros((memory.keys_BSE.shape[0], self.hidden_size), jnp.float32)
        return tuple((zeros_BH, zeros_BH) if self.cell_type == "lstm" else zeros_BH
                     for _ in range(self.num_layers))

    def decode_step(self, memory: Memory, carry: tuple,
                    token_B: jax.Array) -> tuple[jax.Array, jax.Array, tuple]:
        """One step on the previous tokens `token_B` -> `(logits_BV, attention_BS, carry')`."""
        x_BF = jnp.concatenate([self.tgt_embed(token_B), memory.summary_BH], -1)
        cell = CELLS[self.cell_type]
        layers = self.variables["params"]["decoder"]
        new_carry = []
        for layer, layer_carry in enumerate(carry):
            params = layers[f"l{layer}"]
            xg_BG = x_BF @ params["kernel_ih"] + params["bias_ih"][None]
            layer_carry, x_BF = cell.recurrence(params["kernel_hh"], params["bias_hh"],
                                                layer_carry, xg_BG)
            new_carry.append(layer_carry)
        logits_B1V, weights_B1S = self._attend(memory, x_BF[:, None, :])
        return logits_B1V[:, 0], weights_B1S[:, 0], tuple(new_carry)


class TransformerSeq2Seq(nn.Module):
    """Transformer encoder–decoder (pre-LN, sinusoidal positions) behind `Seq2Seq`'s interface.

    `remat` rematerialises the blocks in training (`dlx.nn.transformer`), all but the decoder's
    last, whose cross-attention weights are returned."""
    vocab_size: int
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 256
    dropout: float = 0.0
    remat: bool = False

    def setup(self):
        if self.num_layers < 1:
            raise DlxError(f"num_layers={self.num_layers}; expected at least 1")
        self.src_embed = nn.Embed(self.vocab_size, self.hidden_size)
        self.tgt_embed = nn.Embed(self.vocab_size, self.hidden_size)
        stack = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim, dropout=self.dropout,
                     pre_ln=True, num_layers=self.num_layers, positions="sinusoidal",
                     remat=self.remat)
        self.encoder = Encoder(**stack)
        # `_decode` intercepts the last block's cross-attention, so that block is never rematted.
        self.decoder = Decoder(**stack, remat_last=False)
        self.output = nn.Dense(self.vocab_size)

    def encode(self, src_BS: jax.Array, src_lengths_B: jax.Array, *,
               train: bool = False) -> Memory:
        """Source ids (B, S) right-padded to `src_lengths_B` -> `Memory` (keys (B, S, M))."""
        _check_inputs(src_BS, src_lengths_B, None, self.vocab_size)
        mask_BS = jnp.arange(src_BS.shape[1])[None, :] < src_lengths_B[:, None]
        keys_BSM = self.encoder(self.src_embed(src_BS), padding_mask(mask_BS), train=train)
        return Memory(keys_BSM, mask_BS, None)

    def _decode(self, memory: Memory, tgt_in_BT: jax.Array,
                train: bool) -> tuple[jax.Array, jax.Array]:
        """Causal decoder over `tgt_in_BT` -> `(logits_BTV, attention_BTS)` (module docstring)."""
        last = ("decoder", f"layer_{self.num_layers - 1}", "cross_attention")
        captured = {}

        def capture(call, args, kwargs, context):
            out = call(*args, **kwargs)
            path = context.module.path
            if context.method_name == "__call__" and path[-4:-1] == last:
                captured[path[-1]] = out
            return out

        cross_mask_B11S = padding_mask(memory.mask_BS)
        with nn.intercept_methods(capture):
            h_BTM = self.decoder(self.tgt_embed(tgt_in_BT), memory.keys_BSE,
                                 cross_mask=cross_mask_B11S, train=train)
        heads = lambda x_BLF: x_BLF.reshape(x_BLF.shape[:2] + (self.num_heads, -1))
        weights_BHTS = attention_weights(heads(captured["query"]), heads(captured["key"]),
                                         cross_mask_B11S)
        return self.output(h_BTM), weights_BHTS.mean(axis=1)

    def __call__(self, src_BS: jax.Array, src_lengths_B: jax.Array, tgt_in_BT: jax.Array, *,
                 train: bool = False) -> tuple[jax.Array, jax.Array]:
        """Teacher forcing: `(src_BS, src_lengths_B, tgt_in_BT)` -> `(logits_BTV, attn_BTS)`."""
        _check_inputs(src_BS, src_lengths_B, tgt_in_BT, self.vocab_size)
        return self._decode(self.encode(src_BS, src_lengths_B, train=train), tgt_in_BT, train)

    def init_carry(self, memory: Memory, max_length: int) -> tuple[jax.Array, jax.Array]:
        """`(buffer_BL, t_B)`: an empty `max_length` token buffer and each row's next position."""
        batch = memory.keys_BSE.shape[0]
        return jnp.zeros((batch, max_length), jnp.int32), jnp.zeros((batch,), jnp.int32)

    def decode_step(self, memory: Memory, carry: tuple[jax.Array, jax.Array],
                    token_B: jax.Array) -> tuple[jax.Array, jax.Array, tuple]:
        """Writes `token_B` at position t, runs the decoder over the buffer, reads position t."""
        buffer_BL, t_B = carry
        rows_B = jnp.arange(buffer_BL.shape[0])
        buffer_BL = buffer_BL.at[rows_B, t_B].set(token_B.astype(jnp.int32))
        logits_BLV, weights_BLS = self._decode(memory, buffer_BL, train=False)
        return logits_BLV[rows_B, t_B], weights_BLS[rows_B, t_B], (buffer_BL, t_B + 1)


# --- Decoding ---------------------------------------------------------------------------------


def _write(buffer_BL: jax.Array, t: jax.Array, value_B: jax.Array) -> jax.Array:
    """`buffer_BL` with column `t` set to `value_B`."""
    return jax.lax.dynamic_update_index_in_dim(buffer_BL, value_B, t, axis=1)


def greedy_loop(step_fn: StepFn, carry: Any, batch: int, max_length: int, bos_id: int,
                eos_id: int, pad_id: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Argmax decoding from BOS -> `(tokens_BL, lengths_B, scores_B)` (module docstring).

    `step_fn(carry, token_B) -> (logits_BV, carry)`; rows that emitted EOS keep stepping (their
    outputs are discarded) until every row has, or L steps are done.
    """
    def keep_going(state):
        t, _, _, _, _, _, done_B = state
        return (t < max_length) & ~jnp.all(done_B)

    def step(state):
        t, token_B, carry, tokens_BL, lengths_B, scores_B, done_B = state
        logits_BV, carry = step_fn(carry, token_B)
        logp_BV = jax.nn.log_softmax(logits_BV.astype(jnp.float32))
        token_B = jnp.argmax(logp_BV, axis=-1).astype(jnp.int32)
        best_B = jnp.take_along_axis(logp_BV, token_B[:, None], axis=1)[:, 0]
        scores_B = scores_B + jnp.where(done_B, 0.0, best_B)
        tokens_BL = _write(tokens_BL, t, jnp.where(done_B, pad_id, token_B))
        ended_B = ~done_B & (token_B == eos_id)
        lengths_B = jnp.where(ended_B, t + 1, lengths_B)
        return t + 1, token_B, carry, tokens_BL, lengths_B, scores_B, done_B | ended_B

    init = (jnp.int32(0), jnp.full((batch,), bos_id, jnp.int32), carry,
            jnp.full((batch, max_length), pad_id, jnp.int32), jnp.zeros((batch,), jnp.int32),
            jnp.zeros((batch,), jnp.float32), jnp.zeros((batch,), bool))
    _, _, _, tokens_BL, lengths_B, scores_B, done_B = jax.lax.while_loop(keep_going, step, init)
    return tokens_BL, jnp.where(done_B, lengths_B, max_length), scores_B


def length_penalty_of(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT's length penalty ((5 + length) / 6)^alpha (1 when alpha is 0)."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def beam_loop(step_fn: StepFn, carry: Any, batch: int, max_length: int, bos_id: int,
              eos_id: int, pad_id: int, beam_size: int,
              length_penalty: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Beam search from BOS -> `(tokens_BL, lengths_B, scores_B)` of each row's best hypothesis.

    `carry` holds B rows; it is repeated to B·K rows (beam k of row b at b·K + k) and
    `step_fn` steps all of them at once. Each step ranks the 2K best extensions of the K alive
    beams by log-probability: an EOS among the top K finishes a hypothesis, scored log-prob /
    `length_penalty_of(length)`, and the K best non-EOS extensions stay alive (so K = 1 is
    greedy decoding). A row stops once no alive beam can beat its K-th finished score; a row
    that finished nothing returns its best alive beam (length L).
    """
    if beam_size < 1:
        raise DlxError(f"beam_size={beam_size}; expected at least 1")
    if length_penalty < 0:
        raise DlxError(f"length_penalty={length_penalty}; expected alpha >= 0")
    k = beam_size
    carry = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), carry)
    rank_1C = jnp.arange(2 * k)[None, :]
    top_penalty = length_penalty_of(max_length, length_penalty)

    def keep_going(state):
        t, _, _, _, alive_lp_BK, _, fin_score_BK, _ = state
        # Log-probs only fall and the penalty only grows, so this bounds every alive extension.
        best_possible_B = alive_lp_BK[:, 0] / top_penalty
        settled_B = fin_score_BK[:, -1] >= best_possible_B
        return (t < max_length) & ~jnp.all(settled_B)

    def step(state):
        t, token_R, carry, alive_BKL, alive_lp_BK, fin_BKL, fin_score_BK, fin_len_BK = state
        logits_RV, carry = step_fn(carry, token_R)
        vocab = logits_RV.shape[-1]
        logp_BKV = jax.nn.log_softmax(logits_RV.astype(jnp.float32)).reshape(batch, k, vocab)
        candidates_BX = (alive_lp_BK[:, :, None] + logp_BKV).reshape(batch, k * vocab)
        top_lp_BC, top_index_BC = jax.lax.top_k(candidates_BX, 2 * k)
        parent_BC, token_BC = top_index_BC // vocab, top_index_BC % vocab
        seqs_BCL = _write(jnp.take_along_axis(alive_BKL, parent_BC[:, :, None], axis=1)
                          .reshape(batch * 2 * k, max_length), t,
                          token_BC.reshape(-1)).reshape(batch, 2 * k, max_length)
        is_eos_BC = token_BC == eos_id
        # Finished: EOS among the top K candidates, merged with the K best so far.
        new_score_BC = jnp.where(is_eos_BC & (rank_1C < k) & jnp.isfinite(top_lp_BC),
                                 top_lp_BC / length_penalty_of(t + 1, length_penalty), -jnp.inf)
        pool_score_BP = jnp.concatenate([fin_score_BK, new_score_BC], axis=1)
        pool_BPL = jnp.concatenate([fin_BKL, seqs_BCL], axis=1)
        pool_len_BP = jnp.concatenate([fin_len_BK, jnp.full_like(token_BC, t + 1)], axis=1)
        fin_score_BK, keep_BK = jax.lax.top_k(pool_score_BP, k)
        fin_BKL = jnp.take_along_axis(pool_BPL, keep_BK[:, :, None], axis=1)
        fin_len_BK = jnp.take_along_axis(pool_len_BP, keep_BK, axis=1)
        # Alive: the K best non-EOS candidates (at most K of the 2K end in EOS, one per beam).
        alive_lp_BK, pick_BK = jax.lax.top_k(jnp.where(is_eos_BC, -jnp.inf, top_lp_BC), k)
        alive_BKL = jnp.take_along_axis(seqs_BCL, pick_BK[:, :, None], axis=1)
        rows_R = (jnp.arange(batch)[:, None] * k
                  + jnp.take_along_axis(parent_BC, pick_BK, axis=1)).reshape(-1)
        carry = jax.tree.map(lambda x: x[rows_R], carry)
        token_R = jnp.take_along_axis(token_BC, pick_BK, axis=1).reshape(-1).astype(jnp.int32)
        return (t + 1, token_R, carry, alive_BKL, alive_lp_BK, fin_BKL, fin_score_BK,
                fin_len_BK)

    alive_lp_BK = jnp.where(jnp.arange(k)[None, :] == 0, 0.0, -jnp.inf) * jnp.ones((batch, 1))
    init = (jnp.int32(0), jnp.full((batch * k,), bos_id, jnp.int32), carry,
            jnp.full((batch, k, max_length), pad_id, jnp.int32), alive_lp_BK,
            jnp.full((batch, k, max_length), pad_id, jnp.int32),
            jnp.full((batch, k), -jnp.inf), jnp.zeros((batch, k), jnp.int32))
    _, _, _, alive_BKL, alive_lp_BK, fin_BKL, fin_score_BK, fin_len_BK = jax.lax.while_loop(
        keep_going, step, init)
    found_B = jnp.isfinite(fin_score_BK[:, 0])
    tokens_BL = jnp.where(found_B[:, None], fin_BKL[:, 0], alive_BKL[:, 0])
    lengths_B = jnp.where(found_B, fin_len_BK[:, 0], max_length)
    scores_B = jnp.where(found_B, fin_score_BK[:, 0], alive_lp_BK[:, 0] / top_penalty)
    return tokens_BL, lengths_B, scores_B


def _step_fn(model: nn.Module, params: Any, memory: Memory) -> StepFn:
    """`model.decode_step` on `memory` as a `StepFn` (the attention weights dropped)."""
    def step_fn(carry, token_B):
        logits_BV, _, carry = model.apply({"params": params}, memory, carry, token_B,
                                          method=model.decode_step)
        return logits_BV, carry
    return step_fn


def _encode(model: nn.Module, params: Any, src_BS: jax.Array, src_lengths_B: jax.Array,
            max_length: int) -> tuple[Memory, Any]:
    """(memory, initial decoder carry) of a source batch."""
    memory = model.apply({"params": params}, src_BS, src_lengths_B, method=model.encode)
    return memory, model.apply({"params": params}, memory, max_length, method=model.init_carry)


@functools.partial(jax.jit, static_argnames=("model", "max_length", "bos_id", "eos_id",
                                             "pad_id"))
def greedy_decode(model: nn.Module, params: Any, src_BS: jax.Array, src_lengths_B: jax.Array, *,
                  max_length: int, bos_id: int, eos_id: int,
                  pad_id: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Greedy decoding of `model` -> `(tokens_BL, lengths_B, scores_B)`, L = `max_length`."""
    memory, carry = _encode(model, params, src_BS, src_lengths_B, max_length)
    return greedy_loop(_step_fn(model, params, memory), carry, src_BS.shape[0], max_length,
                       bos_id, eos_id, pad_id)


@functools.partial(jax.jit, static_argnames=("model", "max_length", "bos_id", "eos_id",
                                             "pad_id", "beam_size", "length_penalty"))
def beam_search(model: nn.Module, params: Any, src_BS: jax.Array, src_lengths_B: jax.Array, *,
                max_length: int, bos_id: int, eos_id: int, pad_id: int, beam_size: int,
                length_penalty: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Beam search (`beam_loop`) of `model` -> `(tokens_BL, lengths_B, scores_B)` of the best."""
    memory, carry = _encode(model, params, src_BS, src_lengths_B, max_length)
    memory = jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), memory)
    return beam_loop(_step_fn(model, params, memory), carry, src_BS.shape[0], max_length,
                     bos_id, eos_id, pad_id, beam_size, length_penalty)

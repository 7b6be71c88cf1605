"""Autoregressive sampling from any causal language model given as a function.

`generate` decodes into a fixed buffer of `max_length` tokens: the prompt fills the front, the
rest holds `pad_id`, and an attention mask (1 real / 0 pad) marks the filled part. Each step runs
the model's full forward pass over the whole buffer and reads the logits at the last filled
position; a causal model never lets the padding after that position change them, so the buffer
gives the same tokens as running the growing sequence alone. The buffer's fixed shape means one
compilation per model and length, and the whole decode loop is one jitted `lax.while_loop`.

There is no KV cache: every step costs a full forward over `max_length` tokens (attention is
O(max_length²) per step), which suits the small models it is meant for.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlx.errors import DlxError

LogitsFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


def _check_top_k(top_k: int, vocab_size: int) -> None:
    if not 0 <= top_k <= vocab_size:
        raise DlxError(f"top_k={top_k} is invalid; expected 0 (no filter) up to the vocabulary "
                       f"size {vocab_size}")


def sample_next(key: jax.Array, logits_V: jax.Array, temperature: float | jax.Array,
                top_k: int = 0) -> jax.Array:
    """One token id (int32 scalar) from `logits_V`: argmax if temperature is 0, else a draw.

    The draw is from softmax(logits / temperature), restricted to the `top_k` largest logits
    unless `top_k` is 0. Jit-safe with `top_k` static; `temperature` may be traced.
    """
    if logits_V.ndim != 1:
        raise DlxError(f"sample_next got logits of shape {tuple(logits_V.shape)}; expected (V,)")
    if isinstance(temperature, (int, float)) and temperature < 0:
        raise DlxError(f"temperature={temperature} is negative; expected 0 (greedy) or more")
    _check_top_k(top_k, logits_V.shape[0])
    logits_V = logits_V.astype(jnp.float32)
    greedy = jnp.argmax(logits_V).astype(jnp.int32)
    # Greedy rows still trace the draw; the stand-in temperature 1 keeps it finite there.
    scaled = 1.0 / jnp.where(temperature > 0, temperature, 1.0)
    if top_k:
        top_logits_K, top_ids_K = jax.lax.top_k(logits_V, top_k)
        drawn = top_ids_K[jax.random.categorical(key, top_logits_K * scaled)]
    else:
        drawn = jax.random.categorical(key, logits_V * scaled)
    return jnp.where(temperature > 0, drawn.astype(jnp.int32), greedy)


@functools.partial(jax.jit, static_argnames=("logits_fn", "top_k"))
def _decode(logits_fn: LogitsFn, params: Any, buffer_L: jax.Array, prompt_length: jax.Array,
            max_new_tokens: jax.Array, key: jax.Array, temperature: jax.Array, top_k: int,
            stop_id: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The decode loop: `buffer_L` with tokens appended from `prompt_length` on, and its length."""
    max_length = buffer_L.shape[0]
    end = jnp.minimum(prompt_length + max_new_tokens, max_length)
    positions_L = jnp.arange(max_length)

    def keep_going(carry):
        _, length, _, stopped = carry
        return (length < end) & ~stopped

    def step(carry):
        buffer_L, length, key, _ = carry
        key, draw_key = jax.random.split(key)
        mask_L = (positions_L < length).astype(jnp.int32)
        logits_1LV = logits_fn(params, buffer_L[None], mask_L[None])
        logits_V = jax.lax.dynamic_index_in_dim(logits_1LV[0], length - 1, keepdims=False)
        token = sample_next(draw_key, logits_V, temperature, top_k)
        return buffer_L.at[length].set(token), length + 1, key, token == stop_id

    buffer_L, length, _, _ = jax.lax.while_loop(
        keep_going, step, (buffer_L, prompt_length, key, jnp.array(False)))
    return buffer_L, length


def generate(logits_fn: LogitsFn, params: Any, prompt_ids: Sequence[int] | np.ndarray,
             max_new_tokens: int, *, key: jax.Array, max_length: int, temperature: float = 1.0,
             top_k: int = 0, pad_id: int = 0, stop_id: int | None = None) -> np.ndarray:
    """The prompt followed by up to `max_new_tokens` sampled ids, as a 1-D int32 array.

    `logits_fn(params, input_ids_1T, attention_mask_1T) -> logits_1TV` must be a causal model in
    inference mode, e.g. `lambda p, ids, m: gpt.apply({"params": p}, ids, m)`; it is called with
    T = `max_length`. Each step draws with `sample_next` (temperature 0 is greedy, `top_k` 0 is
    no filter). Decoding ends after a `stop_id` token, which the output includes, or when the
    buffer is full: the output then holds only the first `max_length` tokens. The same `key`
    gives the same output. `logits_fn` is a static argument of the jitted loop: pass the same
    function object each call to reuse the compilation.
    """
    prompt_T = np.asarray(prompt_ids)
    if prompt_T.ndim != 1 or not prompt_T.size or not np.issubdtype(prompt_T.dtype, np.integer):
        raise DlxError(f"prompt_ids has shape {prompt_T.shape} and dtype {prompt_T.dtype}; "
                       f"expected a non-empty 1-D sequence of token ids")
    if len(prompt_T) >= max_length:
        raise DlxError(f"prompt of {len(prompt_T)} tokens leaves no room in max_length="
                       f"{max_length}; expected a prompt shorter than max_length")
    if max_new_tokens < 1:
        raise DlxError(f"max_new_tokens={max_new_tokens} is invalid; expected at least 1")
    if temperature < 0:
        raise DlxError(f"temperature={temperature} is negative; expected 0 (greedy) or more")
    buffer_L = np.full(max_length, pad_id, np.int32)
    buffer_L[:len(prompt_T)] = prompt_T
    mask_1L = jnp.ones((1, max_length), jnp.int32)
    logits_shape = jax.eval_shape(logits_fn, params, buffer_L[None], mask_1L).shape
    if len(logits_shape) != 3 or logits_shape[:2] != (1, max_length):
        raise DlxError(f"logits_fn returned shape {logits_shape}; expected (1, {max_length}, "
                       f"vocab size)")
    vocab_size = logits_shape[2]
    _check_top_k(top_k, vocab_size)
    if prompt_T.min() < 0 or prompt_T.max() >= vocab_size:
        raise DlxError(f"prompt_ids range over [{prompt_T.min()}, {prompt_T.max()}]; expected "
                       f"ids in [0, {vocab_size})")
    buffer_L, length = _decode(
        logits_fn, params, jnp.asarray(buffer_L), jnp.int32(len(prompt_T)),
        jnp.int32(min(max_new_tokens, max_length)), key, jnp.float32(temperature), top_k,
        jnp.int32(-1 if stop_id is None else stop_id))
    return np.asarray(buffer_L)[:int(length)]

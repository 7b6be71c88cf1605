"""Sampling: greedy and top-k against hand references, draw frequencies, keys, stops, errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx import generate as gen
from dlx.errors import DlxError
from dlx.generate import generate, sample_next
from dlx.nn.gpt import GPT

V, L = 6, 12
TABLE_VV = np.random.default_rng(0).normal(scale=2.0, size=(V, V)).astype(np.float32)
PARAMS = {"table": TABLE_VV}
LOGITS_V = np.array([2.0, 1.0, 0.5, 0.0, -1.0, 3.0], np.float32)
NUM_DRAWS = 4000


def bigram(params, ids_1T, mask_1T):
    """A causal LM whose logits at t are row `ids[t]` of the table: hand-computable references."""
    del mask_1T  # Position t reads token t only, so padding can never reach it.
    return params["table"][ids_1T]


def _greedy_reference(prompt: list[int], max_new_tokens: int, stop_id: int | None = None,
                      max_length: int = L) -> list[int]:
    ids = list(prompt)
    while len(ids) < min(len(prompt) + max_new_tokens, max_length):
        ids.append(int(np.argmax(TABLE_VV[ids[-1]])))
        if ids[-1] == stop_id:
            break
    return ids


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def _draw_frequencies(temperature: float, top_k: int) -> np.ndarray:
    keys = jax.random.split(jax.random.PRNGKey(1), NUM_DRAWS)
    draw = jax.jit(jax.vmap(functools.partial(sample_next, logits_V=jnp.asarray(LOGITS_V),
                                              temperature=temperature, top_k=top_k)))
    return np.bincount(np.asarray(draw(keys)), minlength=V) / NUM_DRAWS


def _assert_frequencies(freq: np.ndarray, expected: np.ndarray) -> None:
    """Each token's frequency within 4 standard errors of its probability (plus rounding)."""
    stderr = np.sqrt(expected * (1 - expected) / NUM_DRAWS)
    np.testing.assert_array_less(np.abs(freq - expected), 4 * stderr + 1e-9)


@pytest.mark.parametrize("prompt", [[0], [3, 1], [5, 2, 4, 4, 1]])
def test_greedy_equals_python_argmax_loop(prompt):
    out = generate(bigram, PARAMS, prompt, 5, key=jax.random.PRNGKey(0), max_length=L,
                   temperature=0.0)
    assert out.dtype == np.int32 and out.ndim == 1
    np.testing.assert_array_equal(out, _greedy_reference(prompt, 5))


@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
def test_top_k_1_is_greedy_at_any_temperature(temperature):
    for seed in range(3):
        out = generate(bigram, PARAMS, [seed], 8, key=jax.random.PRNGKey(seed), max_length=L,
                       temperature=temperature, top_k=1)
        np.testing.assert_array_equal(out, _greedy_reference([seed], 8))


@pytest.mark.parametrize("temperature,top_k", [(1.0, 3), (0.5, 2), (2.0, 4)])
def test_top_k_draws_only_top_k_at_softmax_frequencies(temperature, top_k):
    freq = _draw_frequencies(temperature, top_k)
    top = np.argsort(-LOGITS_V)[:top_k]
    expected = np.zeros(V)
    expected[top] = _softmax(LOGITS_V[top] / temperature)
    assert set(np.flatnonzero(freq)) == set(top)
    _assert_frequencies(freq, expected)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_temperature_draws_match_softmax(temperature):
    _assert_frequencies(_draw_frequencies(temperature, 0), _softmax(LOGITS_V / temperature))


def test_sample_next_jitted_with_traced_temperature():
    draw = jax.jit(sample_next, static_argnames="top_k")
    key = jax.random.PRNGKey(0)
    assert int(draw(key, LOGITS_V, 0.0, top_k=0)) == int(np.argmax(LOGITS_V))
    assert int(draw(key, LOGITS_V, 0.0, top_k=3)) == int(np.argmax(LOGITS_V))
    assert int(draw(key, LOGITS_V, 1e-4, top_k=2)) == int(np.argmax(LOGITS_V))
    keys = jax.random.split(key, 200)
    tokens = np.asarray(jax.vmap(lambda k: draw(k, LOGITS_V, 1.0, top_k=2))(keys))
    assert set(tokens) == set(np.argsort(-LOGITS_V)[:2])


def test_generate_draws_within_top_k():
    sampled = {int(generate(bigram, PARAMS, [2], 1, key=jax.random.PRNGKey(seed), max_length=L,
                            temperature=2.0, top_k=3)[-1]) for seed in range(100)}
    assert sampled == set(np.argsort(-TABLE_VV[2])[:3])


def test_same_key_same_output_different_keys_differ():
    def run(seed):
        return generate(bigram, PARAMS, [1, 2], 9, key=jax.random.PRNGKey(seed), max_length=L,
                        temperature=1.5)

    np.testing.assert_array_equal(run(0), run(0))
    outputs = {tuple(run(seed)) for seed in range(6)}
    assert len(outputs) == 6
    assert all(len(out) == 11 and out[:2] == (1, 2) for out in outputs)


def test_stop_id_ends_generation_and_is_included():
    chain = _greedy_reference([0], L)
    stop_id = chain[3]
    expected = _greedy_reference([0], L, stop_id=stop_id)
    assert expected[-1] == stop_id and len(expected) < L
    out = generate(bigram, PARAMS, [0], 20, key=jax.random.PRNGKey(0), max_length=L,
                   temperature=0.0, stop_id=stop_id)
    np.testing.assert_array_equal(out, expected)
    # A stop token in the prompt does not end anything: only generated tokens count.
    out = generate(bigram, PARAMS, [stop_id, 0], 3, key=jax.random.PRNGKey(0), max_length=L,
                   temperature=0.0, stop_id=-5)
    np.testing.assert_array_equal(out, _greedy_reference([stop_id, 0], 3))


def test_full_buffer_returns_what_fits():
    out = generate(bigram, PARAMS, [4, 1, 3], 100, key=jax.random.PRNGKey(0), max_length=L,
                   temperature=0.0)
    np.testing.assert_array_equal(out, _greedy_reference([4, 1, 3], 100))
    assert len(out) == L


def test_one_compilation_for_any_prompt_length_and_settings():
    def fn(params, ids_1T, mask_1T):
        return bigram(params, ids_1T, mask_1T)

    before = gen._decode._cache_size()
    for prompt, new, temperature in (([1], 3, 0.0), ([2, 3, 4], 7, 1.0), ([5] * 9, 1, 0.5)):
        generate(fn, PARAMS, prompt, new, key=jax.random.PRNGKey(0), max_length=L,
                 temperature=temperature, top_k=2, stop_id=3)
    assert gen._decode._cache_size() == before + 1


@pytest.mark.parametrize("prompt,kwargs,match", [
    ([], {}, "non-empty"),
    ([[1, 2]], {}, "1-D"),
    (list(range(L)), {}, "shorter than max_length"),
    ([1], {"temperature": -0.1}, "negative"),
    ([1], {"top_k": -1}, "top_k=-1"),
    ([1], {"top_k": V + 1}, "top_k=7"),
    ([1], {"max_new_tokens": 0}, "max_new_tokens=0"),
    ([1, V], {}, "expected ids in"),
], ids=["empty", "2d", "too_long", "temperature", "top_k_negative", "top_k_over_vocab",
        "max_new_tokens", "id_out_of_range"])
def test_bad_arguments_raise_dlx_error(prompt, kwargs, match):
    kwargs = {"max_new_tokens": 4, **kwargs}
    with pytest.raises(DlxError, match=match):
        generate(bigram, PARAMS, prompt, key=jax.random.PRNGKey(0), max_length=L, **kwargs)


def test_bad_logits_shape_raises_dlx_error():
    with pytest.raises(DlxError, match="logits_fn returned shape"):
        generate(lambda p, ids, m: p["table"][ids[0]], PARAMS, [1], 2,
                 key=jax.random.PRNGKey(0), max_length=L)


def test_gpt_greedy_equals_unpadded_reference_loop():
    gpt = GPT(vocab_size=17, hidden_size=16, num_layers=2, num_heads=2, mlp_dim=32,
              max_length=L)
    params = jax.jit(gpt.init)(jax.random.PRNGKey(3), jnp.zeros((1, L), jnp.int32))["params"]
    # Fresh N(0, 0.02) weights make the tied output echo the last token; noise gives variety.
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(4)
    params = jax.tree_util.tree_unflatten(
        treedef, [x + rng.normal(scale=0.5, size=x.shape).astype(np.float32) for x in leaves])
    apply = jax.jit(lambda p, ids: gpt.apply({"params": p}, ids))
    prompt, new = [3, 14, 7], 6
    out = generate(lambda p, ids, m: gpt.apply({"params": p}, ids, m), params, prompt, new,
                   key=jax.random.PRNGKey(0), max_length=L, temperature=0.0, pad_id=5)
    ids = list(prompt)
    for _ in range(new):
        logits_V = np.asarray(apply(params, np.array([ids], np.int32)))[0, -1]
        top_two = np.sort(logits_V)[-2:]
        assert top_two[1] - top_two[0] > 1e-4  # No near tie that rounding could flip.
        ids.append(int(np.argmax(logits_V)))
    np.testing.assert_array_equal(out, ids)
    assert len(set(ids[len(prompt):])) > 1  # The loop visits more than one token.

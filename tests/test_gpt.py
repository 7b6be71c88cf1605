"""GPT: logits shape, causality, the tied output layer, padding, input checks, dropout."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlx.errors import DlxError
from dlx.nn.gpt import GPT

KEY = jax.random.PRNGKey(0)
B, T, V, M, L = 2, 7, 23, 16, 10
GPT_TINY = GPT(vocab_size=V, hidden_size=M, num_layers=2, num_heads=2, mlp_dim=32, max_length=L)


def _ids(seed: int, shape: tuple[int, ...], low: int = 0, high: int = V) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.int32)


@pytest.fixture(scope="module")
def params():
    return jax.jit(GPT_TINY.init)(KEY, _ids(0, (B, T)))["params"]


@pytest.fixture(scope="module")
def apply(params):
    return lambda ids, mask=None, p=params: _apply(p, ids, mask)


@jax.jit
def _apply(params, ids_BT, mask_BT=None):
    return GPT_TINY.apply({"params": params}, ids_BT, mask_BT)


def test_logits_shape_and_dtype(apply):
    logits = apply(_ids(1, (B, T)))
    chex.assert_shape(logits, (B, T, V))
    assert logits.dtype == jnp.float32
    chex.assert_tree_all_finite(logits)


def test_param_layout_has_no_output_kernel(params):
    assert set(params) == {"token_embedding", "decoder"}
    chex.assert_shape(params["token_embedding"]["embedding"], (V, M))
    assert set(params["decoder"]) == {"position_embedding", "layer_0", "layer_1", "final_norm"}
    chex.assert_shape(params["decoder"]["position_embedding"]["embedding"], (L, M))
    assert set(params["decoder"]["layer_0"]) == {"self_attention", "self_attention_norm", "mlp",
                                                 "mlp_norm"}
    leaves = jax.tree_util.tree_leaves_with_path(params)
    assert not any(leaf.shape in ((M, V), (V,)) for _, leaf in leaves)  # No output kernel/bias.
    assert sum(leaf.size for _, leaf in leaves) == (
        V * M + L * M + 2 * M + 2 * (4 * (M * M + M) + 2 * (M * 32) + 32 + M + 4 * M))


def test_output_layer_is_tied_to_the_token_embedding(params, apply):
    ids = _ids(2, (B, T), high=V // 2)  # Rows V // 2 … V - 1 are never looked up.

    def loss(table):
        p = {**params, "token_embedding": {"embedding": table}}
        return GPT_TINY.apply({"params": p}, ids)[..., V // 2:].sum()

    grad_VM = np.asarray(jax.jit(jax.grad(loss))(params["token_embedding"]["embedding"]))
    # Unused rows get gradient only through logits = h · tableᵀ: proof the output reads the table.
    assert np.all(np.abs(grad_VM[V // 2:]).sum(axis=1) > 0)
    scaled = {**params, "token_embedding": {"embedding": params["token_embedding"]["embedding"]
                                            .at[V - 1].multiply(2.0)}}
    before, after = np.asarray(apply(ids)), np.asarray(apply(ids, p=scaled))
    np.testing.assert_allclose(after[..., V - 1], 2 * before[..., V - 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(after[..., :V - 1], before[..., :V - 1])


def test_future_tokens_never_change_earlier_logits(apply):
    ids = _ids(3, (B, L))
    logits = np.asarray(apply(ids))
    for t in range(L - 1):
        changed = ids.copy()
        changed[:, t + 1:] = (ids[:, t + 1:] + 1 + _ids(4 + t, (B, L - t - 1), high=V - 1)) % V
        logits_changed = np.asarray(apply(changed))
        np.testing.assert_array_equal(logits_changed[:, :t + 1], logits[:, :t + 1])
        assert not np.allclose(logits_changed[:, t + 1:], logits[:, t + 1:])


def test_right_padding_matches_the_sequence_alone(apply):
    lengths = np.array([T, 4])
    ids = _ids(5, (B, T))
    ids[1, lengths[1]:] = 0
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int32)
    padded = np.asarray(apply(ids, mask))
    for row, length in enumerate(lengths):
        alone = apply(ids[row:row + 1, :length])
        np.testing.assert_allclose(padded[row, :length], alone[0], atol=1e-5)
    ids[1, lengths[1]:] = _ids(6, (T - lengths[1],))  # Other padding tokens change nothing real.
    np.testing.assert_array_equal(np.asarray(apply(ids, mask))[1, :lengths[1]],
                                  padded[1, :lengths[1]])


@pytest.mark.parametrize("shape,match", [
    ((T,), "expected \\(batch, length\\)"),
    ((1, L + 1), "exceeds max_length=10"),
], ids=["1d", "too_long"])
def test_bad_input_raises_dlx_error(params, shape, match):
    with pytest.raises(DlxError, match=match):
        GPT_TINY.apply({"params": params}, jnp.zeros(shape, jnp.int32))


def test_mask_shape_mismatch_raises_dlx_error(params):
    with pytest.raises(DlxError, match="attention_mask"):
        GPT_TINY.apply({"params": params}, jnp.zeros((B, T), jnp.int32),
                       jnp.ones((B, T - 1), jnp.int32))


def test_dropout_only_in_train_mode(params):
    ids = _ids(7, (B, T))

    @functools.partial(jax.jit, static_argnames="train")
    def run(rng, train):
        return GPT_TINY.apply({"params": params}, ids, train=train, rngs={"dropout": rng})

    train_a, train_b = (np.asarray(run(jax.random.PRNGKey(s), True)) for s in (1, 2))
    eval_a, eval_b = (np.asarray(run(jax.random.PRNGKey(s), False)) for s in (1, 2))
    assert not np.allclose(train_a, train_b)
    np.testing.assert_array_equal(eval_a, eval_b)
    np.testing.assert_allclose(eval_a, _apply(params, ids), atol=1e-6)
    assert not np.allclose(train_a, eval_a)


def test_labels_give_the_next_token_cross_entropy_argmax_and_gradient_of_the_logits(params):
    ids_BT = _ids(5, (B, T))
    labels_BX = ids_BT[:, 1:]

    def reference(p):
        logits_BXV = GPT_TINY.apply({"params": p}, ids_BT)[:, :-1]
        nll_BX = -jnp.take_along_axis(jax.nn.log_softmax(logits_BXV), labels_BX[..., None],
                                      axis=-1)[..., 0]
        return nll_BX.sum(), (nll_BX, logits_BXV.argmax(-1))

    def fused(p):
        out = GPT_TINY.apply({"params": p}, ids_BT, None, labels_BX)
        return out.nll.sum(), (out.nll, out.predictions)

    (_, (want_nll, want_top)), want_grads = jax.value_and_grad(reference, has_aux=True)(params)
    (_, (nll, top)), grads = jax.jit(jax.value_and_grad(fused, has_aux=True))(params)
    chex.assert_trees_all_close(nll, want_nll, atol=1e-5)
    np.testing.assert_array_equal(top, want_top)
    chex.assert_trees_all_close(grads, want_grads, atol=1e-6, rtol=1e-4)
    with pytest.raises(DlxError, match=r"labels_BX has shape \(2, 8\); expected \(batch, X\)"):
        GPT_TINY.apply({"params": params}, ids_BT, None, _ids(6, (B, T + 1)))

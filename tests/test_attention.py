"""Attention: NumPy reference, jax.nn fused kernel, masks, bf16, gradients, torch/flax parity."""

from __future__ import annotations

import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dlx.errors import DlxError
from dlx.nn import attention, dropout
from dlx.nn.attention import (AdditiveAttention, MultiHeadAttention, attention_weights,
                              causal_mask, combine_masks, dot_product_attention, padding_mask)

KEY = jax.random.PRNGKey(0)
B, T, S, H, D, M = 2, 5, 6, 3, 4, 12
LENGTHS = np.array([6, 3])


def _normal(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _qkv(seed: int = 0, length_q: int = T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (_normal(seed, (B, length_q, H, D)), _normal(seed + 1, (B, S, H, D)),
            _normal(seed + 2, (B, S, H, D)))


def _causal_BHTS() -> jax.Array:
    """Causal mask over T queries and S keys aligned at the end: query t sees keys s <= t + 1."""
    return jnp.asarray(np.tril(np.ones((T, S), bool), k=S - T))[None, None]


MASKS = {
    "none": lambda: (None, None),
    "causal": lambda: (_causal_BHTS(), None),
    "padding": lambda: (padding_mask(jnp.asarray(LENGTHS), S), None),
    "causal_padding_bias": lambda: (combine_masks(_causal_BHTS(),
                                                  padding_mask(jnp.asarray(LENGTHS), S)),
                                    jnp.asarray(_normal(9, (1, H, T, S)))),
}


def _reference(q, k, v, mask=None, bias=None) -> np.ndarray:
    """float64 softmax(q·k/sqrt(D) + bias | mask) v, head by head, query by query."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    mask = np.ones((1, 1, 1, 1), bool) if mask is None else np.asarray(mask)
    bias = np.zeros((1, 1, 1, 1)) if bias is None else np.asarray(bias, np.float64)
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            for t in range(q.shape[1]):
                keep = np.broadcast_to(mask[min(b, mask.shape[0] - 1), min(h, mask.shape[1] - 1),
                                            min(t, mask.shape[2] - 1)], (k.shape[1],))
                scores = k[b, :, h] @ q[b, t, h] / math.sqrt(q.shape[-1])
                scores = scores + np.broadcast_to(
                    bias[min(b, bias.shape[0] - 1), min(h, bias.shape[1] - 1),
                         min(t, bias.shape[2] - 1)], scores.shape)
                if keep.any():
                    e = np.exp(scores[keep] - scores[keep].max())
                    out[b, t, h] = (e / e.sum()) @ v[b, keep, h]
    return out


@pytest.mark.parametrize("masking", list(MASKS))
def test_matches_numpy_reference_and_jax_nn(masking):
    q, k, v = _qkv()
    mask, bias = MASKS[masking]()
    out = dot_product_attention(q, k, v, mask, bias)
    np.testing.assert_allclose(out, _reference(q, k, v, mask, bias), atol=1e-5)
    np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask),
                               atol=1e-5)
    np.testing.assert_allclose(dot_product_attention(q, k, v, mask, bias, use_fused=True), out,
                               atol=1e-5)
    chex.assert_shape(out, (B, T, H, D))
    chex.assert_type(out, jnp.float32)


def test_weights_are_a_distribution_over_unmasked_keys():
    q, k, _ = _qkv()
    mask = padding_mask(jnp.asarray(LENGTHS), S)
    weights = attention_weights(q, k, mask)
    chex.assert_shape(weights, (B, H, T, S))
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(weights[1, :, :, 3:], 0.0)


@pytest.mark.parametrize("use_fused", [False, True], ids=["written", "fused"])
def test_fully_masked_rows_give_zero_output_and_finite_grads(use_fused):
    q, k, v = _qkv()
    mask = np.ones((B, 1, T, S), bool)
    mask[0, 0, 2] = False  # Query 2 of row 0 sees nothing.
    mask[1] = False  # Row 1 sees nothing at all.
    mask = jnp.asarray(mask)
    attend = functools.partial(dot_product_attention, mask=mask, use_fused=use_fused)
    out = attend(q, k, v)
    np.testing.assert_array_equal(out[0, 2], 0.0)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(out[0, :2], _reference(q, k, v, mask)[0, :2], atol=1e-5)
    grads = jax.grad(lambda *qkv: (attend(*qkv) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    for grad in grads:
        assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grads[0][1], 0.0)  # Nothing flows through fully masked rows.
    np.testing.assert_array_equal(attention_weights(q, k, mask)[1], 0.0)


def test_softmax_in_float32_for_bfloat16_inputs():
    q, k, v = _qkv()
    q = 8 * q  # Logits of order 30: a bf16 softmax would lose most of the small weights.
    mask = padding_mask(jnp.asarray(LENGTHS), S)
    out_f32 = dot_product_attention(q, k, v, mask)
    q16, k16, v16 = (jnp.asarray(a, jnp.bfloat16) for a in (q, k, v))
    out_bf16 = dot_product_attention(q16, k16, v16, mask)
    chex.assert_type(out_bf16, jnp.bfloat16)
    chex.assert_type(attention_weights(q16, k16, mask), jnp.float32)
    assert np.isfinite(np.asarray(out_bf16, np.float32)).all()
    np.testing.assert_allclose(np.asarray(out_bf16, np.float32), out_f32, atol=3e-2)
    # Weights computed from the bf16-rounded inputs in f32 equal the f32 weights of those inputs.
    rounded = [np.asarray(a, np.float32) for a in (q16, k16)]
    np.testing.assert_allclose(attention_weights(q16, k16, mask),
                               attention_weights(*rounded, mask), atol=1e-6)


def test_dropout_drops_and_rescales_weights():
    q, k, v = _qkv()
    rng = jax.random.PRNGKey(3)
    out = dot_product_attention(q, k, v, dropout_rate=0.5, dropout_rng=rng, deterministic=False)
    keep = dropout.keep_mask(rng, 0.5, (B, H, T, S))
    weights = jnp.where(keep, attention_weights(q, k) / 0.5, 0.0)
    np.testing.assert_allclose(out, jnp.einsum("bhts,bshd->bthd", weights, v), atol=1e-6)
    np.testing.assert_array_equal(
        dot_product_attention(q, k, v, dropout_rate=0.5, dropout_rng=rng, deterministic=True),
        dot_product_attention(q, k, v))


@pytest.mark.parametrize("masking", list(MASKS))
def test_head_by_head_equals_one_batched_product(masking, monkeypatch):
    q, k, v = _qkv()
    mask, bias = MASKS[masking]()
    cotangent = _normal(8, (B, T, H, D))

    def run(per_head: bool):
        monkeypatch.setattr(attention, "_per_head", lambda: per_head)
        attend = functools.partial(dot_product_attention, mask=mask, bias=bias, dropout_rate=0.3,
                                   dropout_rng=jax.random.PRNGKey(5), deterministic=False)
        out, vjp = jax.vjp(attend, q, k, v)
        return out, vjp(cotangent)

    (out_heads, grads_heads), (out_batched, grads_batched) = run(True), run(False)
    np.testing.assert_allclose(out_heads, out_batched, atol=1e-6)
    chex.assert_trees_all_close(grads_heads, grads_batched, atol=1e-5)


def test_gradients_match_finite_differences_and_jax_nn():
    q, k, v = (a.astype(np.float64) for a in _qkv())
    mask, bias = MASKS["causal_padding_bias"]()
    with jax.enable_x64():
        bias64 = jnp.asarray(bias, jnp.float64)
        check_grads(lambda q, k, v: dot_product_attention(q, k, v, mask, bias64), (q, k, v),
                    order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
    q, k, v = _qkv()
    cotangent = _normal(7, (B, T, H, D))

    def loss(attend, q, k, v):
        return (attend(q, k, v, bias=bias, mask=mask) * cotangent).sum()

    ours = jax.grad(functools.partial(loss, dot_product_attention), argnums=(0, 1, 2))(q, k, v)
    theirs = jax.grad(functools.partial(loss, jax.nn.dot_product_attention),
                      argnums=(0, 1, 2))(q, k, v)
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, ref, atol=1e-5)


@pytest.mark.parametrize("case,match", [
    (dict(q=np.zeros((B, T, H))), "rank 4"),
    (dict(k=np.zeros((B, S, H, D + 1))), "head dim"),
    (dict(v=np.zeros((B, S + 1, H, D))), "equal"),
    (dict(k=np.zeros((B, S, H + 1, D)), v=np.zeros((B, S, H + 1, D))), "batch and heads"),
    (dict(mask=jnp.ones((B, T, S), bool)), "rank 4"),
    (dict(mask=jnp.ones((B, 1, T, S + 1), bool)), "broadcastable"),
    (dict(mask=jnp.ones((B, 1, T, S))), "bool"),
    (dict(bias=jnp.ones((T, S))), "bias"),
    (dict(implementation="flash"), "implementation"),
    (dict(implementation="xla"), "use_fused"),
    (dict(dropout_rate=1.0), "dropout_rate"),
    (dict(dropout_rate=0.1, deterministic=False), "dropout_rng"),
    (dict(dropout_rate=0.1, deterministic=False, dropout_rng=KEY, use_fused=True), "use_fused"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_bad_inputs_raise_dlx_error(case, match):
    q, k, v = _qkv()
    arrays = {"q": q, "k": k, "v": v}
    arrays.update({name: case.pop(name) for name in ("q", "k", "v") if name in case})
    with pytest.raises(DlxError, match=match):
        dot_product_attention(arrays["q"], arrays["k"], arrays["v"], **case)


def test_mask_helpers():
    np.testing.assert_array_equal(causal_mask(3)[0, 0], [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    chex.assert_shape(causal_mask(3), (1, 1, 3, 3))
    from_lengths = padding_mask(jnp.array([2, 0]), 3)
    chex.assert_shape(from_lengths, (2, 1, 1, 3))
    np.testing.assert_array_equal(from_lengths[:, 0, 0], [[1, 1, 0], [0, 0, 0]])
    valid = jnp.array([[True, False, True]])
    np.testing.assert_array_equal(padding_mask(valid)[0, 0, 0], [1, 0, 1])
    both = padding_mask(jnp.array([2]), 3, mask_queries=True)
    np.testing.assert_array_equal(both[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    combined = combine_masks(None, causal_mask(3), padding_mask(jnp.array([2, 3]), 3))
    chex.assert_shape(combined, (2, 1, 3, 3))
    np.testing.assert_array_equal(combined[0, 0], [[1, 0, 0], [1, 1, 0], [1, 1, 0]])
    assert combine_masks(None, None) is None
    for bad in (lambda: padding_mask(jnp.array([2])), lambda: padding_mask(jnp.ones((2, 3))),
                lambda: combine_masks(jnp.ones((3, 3), bool))):
        with pytest.raises(DlxError):
            bad()


def test_additive_attention_matches_formula():
    query, keys = _normal(0, (B, 2, 3)), _normal(1, (B, S, 5))
    mask = jnp.asarray(np.arange(S)[None, None, :] < LENGTHS[:, None, None])  # (B, 1, S)
    module = AdditiveAttention(hidden=7)
    params = module.init(KEY, query, keys)["params"]
    context, weights = module.apply({"params": params}, query, keys, mask)
    chex.assert_shape((context, weights), [(B, 2, 5), (B, 2, S)])
    w_s, w_h, v = (np.asarray(params[name]["kernel"], np.float64)
                   for name in ("query", "key", "score"))
    for b in range(B):
        for t in range(2):
            scores = np.tanh(query[b, t] @ w_s + keys[b, :LENGTHS[b]] @ w_h) @ v[:, 0]
            alpha = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
            np.testing.assert_allclose(weights[b, t, :LENGTHS[b]], alpha, atol=1e-6)
            np.testing.assert_array_equal(weights[b, t, LENGTHS[b]:], 0.0)
            np.testing.assert_allclose(context[b, t], alpha @ keys[b, :LENGTHS[b]], atol=1e-5)
    context, weights = module.apply({"params": params}, query, keys, jnp.zeros((B, 2, S), bool))
    np.testing.assert_array_equal(context, 0.0)
    with pytest.raises(DlxError, match="mask"):
        module.apply({"params": params}, query, keys, jnp.ones((B, 1, 2, S), bool))


def _mha_params(rng: np.random.Generator, model_dim: int, kv_dim: int,
                heads_dim: int) -> dict:
    """Random `MultiHeadAttention` params with nonzero biases."""
    shapes = {"query": (model_dim, heads_dim), "key": (kv_dim, heads_dim),
              "value": (kv_dim, heads_dim), "out": (heads_dim, model_dim)}
    return {name: {"kernel": jnp.asarray(0.3 * rng.normal(size=shape), jnp.float32),
                   "bias": jnp.asarray(0.1 * rng.normal(size=shape[1]), jnp.float32)}
            for name, shape in shapes.items()}


@pytest.mark.parametrize("kv_dim", [M, 7], ids=["self", "cross"])
def test_multi_head_attention_matches_torch(kv_dim):
    torch = pytest.importorskip("torch", exc_type=ImportError)
    params = _mha_params(np.random.default_rng(0), M, kv_dim, M)
    x_q = _normal(1, (B, T, M))
    x_kv = x_q if kv_dim == M else _normal(2, (B, S, kv_dim))
    length_kv = x_kv.shape[1]
    lengths = np.minimum(LENGTHS, length_kv)
    mask = padding_mask(jnp.asarray(lengths), length_kv)
    if kv_dim == M:
        mask = combine_masks(mask, causal_mask(T))
    ours = MultiHeadAttention(num_heads=H).apply({"params": params}, x_q,
                                                 None if kv_dim == M else x_kv, mask)

    mha = torch.nn.MultiheadAttention(M, H, batch_first=True, kdim=kv_dim, vdim=kv_dim)
    weight = {name: torch.from_numpy(np.asarray(params[name]["kernel"]).T.copy())
              for name in params}
    with torch.no_grad():
        if kv_dim == M:
            mha.in_proj_weight.copy_(torch.cat([weight["query"], weight["key"], weight["value"]]))
        else:
            for name, torch_name in (("query", "q"), ("key", "k"), ("value", "v")):
                getattr(mha, f"{torch_name}_proj_weight").copy_(weight[name])
        mha.in_proj_bias.copy_(torch.from_numpy(np.concatenate(
            [np.asarray(params[name]["bias"]) for name in ("query", "key", "value")])))
        mha.out_proj.weight.copy_(weight["out"])
        mha.out_proj.bias.copy_(torch.from_numpy(np.array(params["out"]["bias"])))
        key_padding = torch.from_numpy(np.arange(length_kv)[None, :] >= lengths[:, None])
        attn_mask = (torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
                     if kv_dim == M else None)
        theirs, _ = mha(torch.from_numpy(x_q), torch.from_numpy(x_kv), torch.from_numpy(x_kv),
                        key_padding_mask=key_padding, attn_mask=attn_mask, need_weights=False)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


def test_multi_head_attention_matches_flax_with_copied_weights():
    x_q, x_kv = _normal(1, (B, T, M)), _normal(2, (B, S, M))
    mask = padding_mask(jnp.asarray(LENGTHS), S)
    params = _mha_params(np.random.default_rng(0), M, M, M)
    flax_params = {name: {"kernel": p["kernel"].reshape(M, H, D), "bias": p["bias"].reshape(H, D)}
                   for name, p in params.items() if name != "out"}
    flax_params["out"] = {"kernel": params["out"]["kernel"].reshape(H, D, M),
                          "bias": params["out"]["bias"]}
    theirs = nn.MultiHeadDotProductAttention(num_heads=H).apply(
        {"params": flax_params}, x_q, x_kv, mask=mask)
    for use_fused in (False, True):
        ours = MultiHeadAttention(num_heads=H, use_fused=use_fused).apply(
            {"params": params}, x_q, x_kv, mask)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


class TestMultiHeadAttentionModule(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_equals_eager_and_param_shapes(self):
        module = MultiHeadAttention(num_heads=H, head_dim=5, out_features=8, dropout=0.3)
        x = _normal(0, (B, T, M))
        params = module.init(KEY, x)["params"]
        chex.assert_trees_all_equal_shapes(params, {
            "query": {"kernel": np.zeros((M, 15)), "bias": np.zeros(15)},
            "key": {"kernel": np.zeros((M, 15)), "bias": np.zeros(15)},
            "value": {"kernel": np.zeros((M, 15)), "bias": np.zeros(15)},
            "out": {"kernel": np.zeros((15, 8)), "bias": np.zeros(8)}})

        @self.variant
        def apply(x, rng):
            return module.apply({"params": params}, x, train=True, rngs={"dropout": rng})

        out = apply(x, jax.random.PRNGKey(1))
        chex.assert_shape(out, (B, T, 8))
        np.testing.assert_allclose(
            out, module.apply({"params": params}, x, train=True,
                              rngs={"dropout": jax.random.PRNGKey(1)}), atol=1e-6)
        assert not np.allclose(out, apply(x, jax.random.PRNGKey(2)))
        assert not np.allclose(out, module.apply({"params": params}, x))

    def test_bad_shapes_raise_dlx_error(self):
        x = _normal(0, (B, T, M))
        with self.assertRaisesRegex(DlxError, "num_heads=5"):
            MultiHeadAttention(num_heads=5).init(KEY, x)
        with self.assertRaisesRegex(DlxError, "inputs_kv"):
            MultiHeadAttention(num_heads=H).init(KEY, x, _normal(0, (B + 1, S, M)))

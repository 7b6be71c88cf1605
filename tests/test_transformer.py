"""Transformer: positions, torch layer parity, causality, padding invariance, jit, learning."""

from __future__ import annotations

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx.errors import DlxError
from dlx.nn.attention import padding_mask
from dlx.nn.transformer import (Decoder, DecoderBlock, Encoder, EncoderBlock, TransformerMLP,
                                sinusoidal_positions)

KEY = jax.random.PRNGKey(0)
B, T, S, M, H, F = 2, 6, 4, 8, 2, 16
LENGTHS = np.array([6, 3])
SIZES = dict(num_heads=H, mlp_dim=F)


def _normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_sinusoidal_positions_golden_values():
    pe = np.asarray(sinusoidal_positions(4, 4))
    chex.assert_shape(pe, (4, 4))
    # PE[t, 2i] = sin(t / 10000^(2i/4)), PE[t, 2i+1] = cos(...): frequencies 1 and 1/100.
    np.testing.assert_allclose(pe[0], [0.0, 1.0, 0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(pe[1], [0.8414709848, 0.5403023059, 0.0099998333, 0.9999500004],
                               atol=1e-7)
    np.testing.assert_allclose(pe[3], [0.1411200081, -0.9899924966, 0.0299955002, 0.9995500337],
                               atol=1e-7)
    with pytest.raises(DlxError, match="even"):
        sinusoidal_positions(4, 5)


@pytest.mark.parametrize("approximate", [False, True], ids=["erf", "tanh"])
def test_mlp_matches_formula(approximate):
    x = _normal(0, (B, T, M))
    mlp = TransformerMLP(F, approximate_gelu=approximate)
    params = mlp.init(KEY, x)["params"]
    chex.assert_trees_all_equal_shapes(params, {
        "intermediate": {"kernel": np.zeros((M, F)), "bias": np.zeros(F)},
        "output": {"kernel": np.zeros((F, M)), "bias": np.zeros(M)}})
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # Nonzero biases.
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    u = x @ p["intermediate"]["kernel"] + p["intermediate"]["bias"]
    if approximate:
        gelu = 0.5 * u * (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))
    else:
        gelu = 0.5 * u * (1 + np.vectorize(math.erf)(u / math.sqrt(2)))
    expected = gelu @ p["output"]["kernel"] + p["output"]["bias"]
    np.testing.assert_allclose(mlp.apply({"params": params}, x), expected, atol=1e-5)


def _from_torch(module) -> dict:
    """A torch Linear/LayerNorm/MultiheadAttention's weights as dlx params (kernel = weight.T)."""
    def array(t):
        return jnp.asarray(t.detach().numpy())

    if hasattr(module, "in_proj_weight"):
        weights = module.in_proj_weight.chunk(3)
        biases = module.in_proj_bias.chunk(3)
        params = {name: {"kernel": array(w).T, "bias": array(b)}
                  for name, w, b in zip(("query", "key", "value"), weights, biases)}
        params["out"] = _from_torch(module.out_proj)
        return params
    if hasattr(module, "normalized_shape"):
        return {"scale": array(module.weight), "bias": array(module.bias)}
    return {"kernel": array(module.weight).T, "bias": array(module.bias)}


def _torch_layer(torch, decoder: bool, pre_ln: bool):
    """A torch Transformer{En,De}coderLayer with exact GELU, eps 1e-12 and random weights."""
    torch.manual_seed(0)
    layer_class = torch.nn.TransformerDecoderLayer if decoder else torch.nn.TransformerEncoderLayer
    layer = layer_class(M, H, F, dropout=0.0, activation="gelu", layer_norm_eps=1e-12,
                        batch_first=True, norm_first=pre_ln).eval()
    with torch.no_grad():
        for param in layer.parameters():
            param.add_(0.3 * torch.randn(param.shape))
    return layer


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
def test_encoder_block_matches_torch(pre_ln):
    torch = pytest.importorskip("torch", exc_type=ImportError)
    layer = _torch_layer(torch, decoder=False, pre_ln=pre_ln)
    params = {"attention": _from_torch(layer.self_attn), "attention_norm": _from_torch(layer.norm1),
              "mlp": {"intermediate": _from_torch(layer.linear1),
                      "output": _from_torch(layer.linear2)},
              "mlp_norm": _from_torch(layer.norm2)}
    x = _normal(0, (B, T, M))
    block = EncoderBlock(**SIZES, pre_ln=pre_ln, layer_norm_epsilon=1e-12)
    ours = block.apply({"params": params}, x, padding_mask(jnp.asarray(LENGTHS), T))
    pad = torch.from_numpy(np.arange(T)[None, :] >= LENGTHS[:, None])
    theirs = layer(torch.from_numpy(x), src_key_padding_mask=pad).detach().numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


@pytest.mark.parametrize("pre_ln", [False, True], ids=["post_ln", "pre_ln"])
def test_decoder_block_matches_torch(pre_ln):
    torch = pytest.importorskip("torch", exc_type=ImportError)
    layer = _torch_layer(torch, decoder=True, pre_ln=pre_ln)
    params = {"self_attention": _from_torch(layer.self_attn),
              "self_attention_norm": _from_torch(layer.norm1),
              "cross_attention": _from_torch(layer.multihead_attn),
              "cross_attention_norm": _from_torch(layer.norm2),
              "mlp": {"intermediate": _from_torch(layer.linear1),
                      "output": _from_torch(layer.linear2)},
              "mlp_norm": _from_torch(layer.norm3)}
    x, memory = _normal(0, (B, T, M)), _normal(1, (B, S, M))
    memory_lengths = np.array([4, 2])
    block = DecoderBlock(**SIZES, pre_ln=pre_ln, layer_norm_epsilon=1e-12)
    ours = block.apply({"params": params}, x, memory, None,
                       padding_mask(jnp.asarray(memory_lengths), S))
    theirs = layer(torch.from_numpy(x), torch.from_numpy(memory),
                   tgt_mask=torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1),
                   memory_key_padding_mask=torch.from_numpy(
                       np.arange(S)[None, :] >= memory_lengths[:, None]))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=2e-5)


@pytest.mark.parametrize("pre_ln,cross", [(False, False), (True, True)],
                         ids=["post_ln", "pre_ln_cross"])
def test_decoder_is_causal(pre_ln, cross):
    decoder = Decoder(**SIZES, num_layers=2, pre_ln=pre_ln, positions="learned", max_length=T)
    x, memory = _normal(0, (B, T, M)), (_normal(1, (B, S, M)) if cross else None)
    params = jax.jit(decoder.init)(KEY, x, memory)["params"]
    apply = jax.jit(lambda x: decoder.apply({"params": params}, x, memory))
    y = np.asarray(apply(x))
    for t in range(T):
        changed = x.copy()
        changed[:, t:] = _normal(2 + t, (B, T - t, M))
        y_changed = np.asarray(apply(changed))
        np.testing.assert_array_equal(y_changed[:, :t], y[:, :t])
        assert not np.allclose(y_changed[:, t:], y[:, t:])


def test_encoder_ignores_padded_positions():
    encoder = Encoder(**SIZES, num_layers=2)
    x = _normal(0, (B, T, M))
    mask = padding_mask(jnp.asarray(LENGTHS), T)
    params = jax.jit(encoder.init)(KEY, x, mask)["params"]
    apply = jax.jit(lambda x: encoder.apply({"params": params}, x, mask))
    changed = x.copy()
    changed[1, LENGTHS[1]:] = _normal(1, (T - LENGTHS[1], M))
    y, y_changed = np.asarray(apply(x)), np.asarray(apply(changed))
    np.testing.assert_array_equal(y_changed[0], y[0])
    np.testing.assert_array_equal(y_changed[1, :LENGTHS[1]], y[1, :LENGTHS[1]])
    unmasked = encoder.apply({"params": params}, changed)  # Without the mask padding leaks in.
    assert not np.allclose(unmasked[1, :LENGTHS[1]], y[1, :LENGTHS[1]])


def test_param_structure():
    x, memory = _normal(0, (B, T, M)), _normal(1, (B, S, M))
    encoder = Encoder(**SIZES, num_layers=2, pre_ln=True, positions="learned", max_length=10)
    params = jax.eval_shape(encoder.init, KEY, x)["params"]  # Shapes only: no eager compute.
    assert set(params) == {"layer_0", "layer_1", "final_norm", "position_embedding"}
    chex.assert_shape(params["position_embedding"]["embedding"], (10, M))
    assert set(params["layer_1"]) == {"attention", "attention_norm", "mlp", "mlp_norm"}
    chex.assert_shape(params["layer_0"]["attention"]["query"]["kernel"], (M, M))
    decoder = Decoder(**SIZES, num_layers=1, positions="none")
    assert set(decoder.init(KEY, x)["params"]) == {"layer_0"}
    assert "cross_attention" not in decoder.init(KEY, x)["params"]["layer_0"]
    with_cross = jax.jit(decoder.init)(KEY, x, memory)["params"]["layer_0"]
    assert {"cross_attention", "cross_attention_norm"} <= set(with_cross)
    chex.assert_shape(decoder.apply({"params": {"layer_0": with_cross}}, x, memory), (B, T, M))


@pytest.mark.parametrize("module,x,match", [
    (Encoder(**SIZES, positions="rotary"), (B, T, M), "positions"),
    (Encoder(**SIZES, positions="learned", max_length=T - 1), (B, T, M), "max_length"),
    (Encoder(**SIZES), (B, T, M - 1), "even"),
    (Encoder(**SIZES), (T, M), "batch, length"),
    (Decoder(num_heads=3, mlp_dim=F, positions="none"), (B, T, M), "num_heads=3"),
], ids=["positions", "max_length", "odd_features", "rank", "heads"])
def test_bad_configs_raise_dlx_error(module, x, match):
    with pytest.raises(DlxError, match=match):
        module.init(KEY, jnp.zeros(x))


class TestJit(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_equals_eager_with_dropout(self):
        encoder = Encoder(**SIZES, dropout=0.2, attention_dropout=0.2)
        x = _normal(0, (B, T, M))
        mask = padding_mask(jnp.asarray(LENGTHS), T)
        params = jax.jit(encoder.init)(KEY, x, mask)["params"]

        @self.variant
        def apply(x, rng):
            return encoder.apply({"params": params}, x, mask, train=True, rngs={"dropout": rng})

        rng = jax.random.PRNGKey(1)
        out = apply(x, rng)
        chex.assert_shape(out, (B, T, M))
        eager = encoder.apply({"params": params}, x, mask, train=True, rngs={"dropout": rng})
        np.testing.assert_allclose(out, eager, atol=1e-5)
        assert not np.allclose(out, encoder.apply({"params": params}, x, mask))


class _TinyLM(nn.Module):
    """Tokens `(B, T)` -> next-token logits `(B, T, V)`: embedding, causal Decoder, Dense head."""
    vocab: int

    @nn.compact
    def __call__(self, tokens_BT: jax.Array, *, train: bool = False) -> jax.Array:
        x_BTM = nn.Embed(self.vocab, 32)(tokens_BT)
        h_BTM = Decoder(num_heads=4, mlp_dim=64, num_layers=2, pre_ln=True,
                        positions="learned", max_length=16)(x_BTM, train=train)
        return nn.Dense(self.vocab)(h_BTM)


def test_tiny_causal_lm_memorises_sequences():
    vocab = 12
    # Distinct first tokens, so every next token is determined by the prefix.
    rng = np.random.default_rng(0)
    sequences = np.concatenate([np.arange(4)[:, None], rng.integers(0, vocab, (4, 9))], axis=1)
    inputs, targets = jnp.asarray(sequences[:, :-1]), jnp.asarray(sequences[:, 1:])
    model = _TinyLM(vocab)
    params = jax.jit(model.init)(KEY, inputs)["params"]  # Eager init runs op by op: slow.
    optimizer = optax.adam(5e-3)

    @jax.jit
    def loss_fn(params):
        logits = model.apply({"params": params}, inputs)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    @jax.jit
    def train(params, opt_state):
        def step(carry, _):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), loss
        return jax.lax.scan(step, (params, opt_state), length=80)

    initial = loss_fn(params)
    (params, _), losses = train(params, optimizer.init(params))
    final = loss_fn(params)
    assert initial > 2.0 and final < 0.1, (float(initial), float(final), losses[::20])

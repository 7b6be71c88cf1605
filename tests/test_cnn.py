"""Conv1DNet and SimpleCNN: shapes and parameter counts from the conv arithmetic, a numpy reference
forward, BatchNorm and dropout modes, and one short fit."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from conftest import load_benchmark
from dlx import tasks
from dlx.errors import DlxError
from dlx.nn import build
from dlx.nn.cnn import (CONV1D_KERNELS, Conv1DNet, SimpleCNN, conv_output_size, conv_param_count,
                        max_pool_2x2, pool_output_size)
from dlx.train import steps
from dlx.train.state import TrainState


def _count(params) -> int:
    return sum(p.size for p in jax.tree.leaves(params))


def _shapes(model: nn.Module, x_shape: tuple[int, ...]):
    """(abstract variables, abstract logits, captured submodule outputs) without any FLOPs."""
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    logits, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]),
        variables, x)
    return variables, logits, state["intermediates"]


def test_conv1d_lengths_follow_the_conv_arithmetic():
    lengths = [40]
    for kernel in CONV1D_KERNELS:
        lengths.append(conv_output_size(lengths[-1], kernel, stride=2, padding=1))
    assert lengths == [40, 19, 10, 5]
    variables, logits, captured = _shapes(Conv1DNet(num_outputs=10), (3, 40))
    assert logits.shape == (3, 10)
    for i, length in enumerate(lengths[1:]):
        assert captured[f"Conv_{i}"]["__call__"][0].shape == (3, length, 25)
    params = variables["params"]
    assert params["Dense_0"]["kernel"].shape == (5 * 25, 10)
    expected = (conv_param_count(1, 5, 1, 25) + 2 * conv_param_count(1, 3, 25, 25)
                + 125 * 10 + 10)
    assert _count(params) == expected == 5210  # The paper's ConvBase count.


def test_conv1d_flattened_size_follows_the_input_length():
    variables, logits, _ = _shapes(Conv1DNet(num_outputs=4, channels=8), (2, 72))
    assert conv_output_size(conv_output_size(conv_output_size(72, 5, 2, 1), 3, 2, 1), 3, 2, 1) == 9
    assert variables["params"]["Dense_0"]["kernel"].shape == (9 * 8, 4)
    assert logits.shape == (2, 4)


def _numpy_conv1d(x_BLC, kernel_KIO, bias_O, stride=2, padding=1):
    """Cross-correlation, window by window: out[b,t,o] = sum_ki x[b,st+k,i] w[k,i,o] + b[o]."""
    x = np.pad(x_BLC, ((0, 0), (padding, padding), (0, 0)))
    size = kernel_KIO.shape[0]
    length = (x.shape[1] - size) // stride + 1
    out = np.stack([np.einsum("bki,kio->bo", x[:, t * stride:t * stride + size], kernel_KIO)
                    for t in range(length)], axis=1)
    return out + bias_O


def test_conv1d_equals_a_numpy_reference_forward():
    model = Conv1DNet(num_outputs=10)
    x_BT = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (4, 40)), np.float64)
    params = jax.jit(model.init)(jax.random.PRNGKey(1), jnp.asarray(x_BT, jnp.float32))["params"]
    # Flax initialises biases to zero; random ones make the check cover them too.
    params = {name: {**layer, "bias": 0.1 * jax.random.normal(jax.random.PRNGKey(i),
                                                              layer["bias"].shape)}
              for i, (name, layer) in enumerate(params.items())}
    h = x_BT[:, :, None]
    for i in range(3):
        conv = params[f"Conv_{i}"]
        h = np.maximum(_numpy_conv1d(h, np.asarray(conv["kernel"], np.float64),
                                     np.asarray(conv["bias"], np.float64)), 0.0)
    dense = params["Dense_0"]
    expected = h.reshape(4, -1) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
    logits = jax.jit(model.apply)({"params": params}, jnp.asarray(x_BT, jnp.float32))
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)


def _flat_features(height: int, width: int) -> int:
    """(H, W) after conv 5x5 pad 2 -> pool 2 -> conv 5x5 pad 2 -> pool 2, times 64 channels."""
    sizes = []
    for size in (height, width):
        for _ in range(2):
            size = pool_output_size(conv_output_size(size, 5, padding=2), 2)
        sizes.append(size)
    return sizes[0] * sizes[1] * 64


@pytest.mark.parametrize("x_shape, features", [
    ((2, 8, 8), 2 * 2 * 64),       # sklearn digits, channel axis added.
    ((2, 28, 28, 1), 7 * 7 * 64),  # MNIST.
    ((2, 32, 32, 3), 8 * 8 * 64),  # CIFAR-10.
    ((2, 7, 9), 1 * 2 * 64),       # Odd sizes: the pools floor.
])
def test_simple_cnn_shapes_and_param_count(x_shape, features):
    assert _flat_features(*x_shape[1:3]) == features
    channels = x_shape[3] if len(x_shape) == 4 else 1
    variables, logits, captured = _shapes(SimpleCNN(num_outputs=10), x_shape)
    assert logits.shape == (2, 10)
    params = variables["params"]
    assert params["Dense_0"]["kernel"].shape == (features, 1000)
    assert captured["Conv_1"]["__call__"][0].shape[-1] == 64
    expected = (conv_param_count(5, 5, channels, 32) + conv_param_count(5, 5, 32, 64)
                + features * 1000 + 1000 + 1000 * 10 + 10)
    assert _count(params) == expected


def test_simple_cnn_digits_param_count_by_hand():
    variables, _, _ = _shapes(SimpleCNN(num_outputs=10), (1, 8, 8))
    assert _count(variables["params"]) == 832 + 51264 + 257000 + 10010


def test_simple_cnn_batchnorm_replaces_conv_biases():
    variables, _, _ = _shapes(SimpleCNN(num_outputs=10, use_batchnorm=True), (1, 8, 8))
    params = variables["params"]
    assert "bias" not in params["Conv_0"] and "bias" not in params["Conv_1"]
    assert _count(params) == (conv_param_count(5, 5, 1, 32, bias=False) + 2 * 32
                              + conv_param_count(5, 5, 32, 64, bias=False) + 2 * 64
                              + 257000 + 10010)
    assert _count(variables["batch_stats"]) == 2 * (32 + 64)


def test_models_reject_wrong_input_ranks():
    with pytest.raises(DlxError, match="Conv1DNet expects"):
        _shapes(Conv1DNet(num_outputs=10), (2, 40, 1))
    with pytest.raises(DlxError, match="SimpleCNN expects"):
        _shapes(SimpleCNN(num_outputs=10), (2, 64))


def test_simple_cnn_batchnorm_train_updates_stats_eval_uses_them():
    model = SimpleCNN(num_outputs=3, use_batchnorm=True, dropout=0.0, hidden=16)
    x = 2.0 + jax.random.normal(jax.random.PRNGKey(0), (16, 8, 8))
    variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    evaluate = jax.jit(model.apply)
    train_out, updates = train(variables, x)
    for name in ("BatchNorm_0", "BatchNorm_1"):
        assert not np.allclose(updates["batch_stats"][name]["mean"], 0.0)
        assert not np.allclose(updates["batch_stats"][name]["var"], 1.0)
    # Train mode normalises with the batch's own statistics, so stored stats do not matter ...
    chex.assert_trees_all_close(train(dict(variables, **updates), x)[0], train_out,
                                rtol=1e-5, atol=1e-5)
    # ... eval mode uses the stored ones: changing them changes the output, rows are independent.
    eval_before = evaluate(variables, x)
    assert not np.allclose(evaluate(dict(variables, **updates), x), eval_before)
    assert not np.allclose(eval_before, train_out)
    moved = evaluate(variables, x.at[0].set(50.0))
    chex.assert_trees_all_close(moved[1:], eval_before[1:])


def test_simple_cnn_dropout_only_in_train():
    model = SimpleCNN(num_outputs=10, dropout=0.5, hidden=32)
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8))
    variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    forward = jax.jit(lambda module, seed, train: module.apply(
        variables, x, train=train, rngs={"dropout": jax.random.PRNGKey(seed)}),
        static_argnums=(0, 2))
    apply = lambda seed, train: forward(model, seed, train)
    chex.assert_trees_all_equal(apply(0, False), apply(1, False))
    chex.assert_trees_all_equal(apply(0, True), apply(0, True))
    assert not np.allclose(apply(0, True), apply(1, True))
    assert not np.allclose(apply(0, True), apply(0, False))
    no_dropout = SimpleCNN(num_outputs=10, dropout=0.0, hidden=32)
    chex.assert_trees_all_close(forward(no_dropout, 0, True), apply(0, False), atol=1e-6)


def test_registry_builds_both_models():
    conv1d = build(ConfigDict({"name": "conv1d", "channels": 7}), num_outputs=10)
    assert conv1d == Conv1DNet(num_outputs=10, channels=7)
    cnn = build(ConfigDict({"name": "simple_cnn", "batchnorm": True, "dropout": 0.1,
                            "hidden": 64}), num_outputs=3, axis_name="batch")
    assert cnn == SimpleCNN(num_outputs=3, use_batchnorm=True, dropout=0.1, hidden=64,
                            axis_name="batch")
    with pytest.raises(DlxError, match="needs the key model.hidden"):
        build(ConfigDict({"name": "simple_cnn", "batchnorm": False, "dropout": 0.1}), 10)


@pytest.mark.parametrize("model, x_shape", [
    (Conv1DNet(num_outputs=10), (32, 40)),
    (SimpleCNN(num_outputs=10, use_batchnorm=True, hidden=64), (32, 8, 8)),
])
def test_loss_falls_on_a_tiny_batch(model, x_shape):
    task = tasks.Classification(model)
    tx = optax.adam(1e-2)
    kx, ky, kinit = jax.random.split(jax.random.PRNGKey(0), 3)
    batch = {"x": jax.random.normal(kx, x_shape), "y": jax.random.randint(ky, (32,), 0, 10)}
    params, batch_stats = jax.jit(task.init)(kinit, batch)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                       batch_stats=batch_stats, rng=jax.random.PRNGKey(1))
    step = jax.jit(lambda s, b: steps.train_step(s, b, task=task, tx=tx))
    losses = []
    for _ in range(60):
        state, sums = step(state, batch)
        losses.append(float(sums["loss"] / sums["count"]))
    assert losses[-1] < 0.1 * losses[0], losses[::10]


@pytest.fixture(scope="module")
def bench_cnn():
    """benchmarks/cnn.py, whose `StockCNN` is SimpleCNN written the stock Flax way."""
    return load_benchmark("cnn")


@pytest.mark.parametrize("x_shape", [(3, 8, 8, 1), (3, 7, 9, 2), (2, 28, 28, 1), (5, 5, 3, 1),
                                     (2, 32, 32, 3)])
def test_max_pool_2x2_equals_flax_max_pool_with_ties(x_shape):
    # Rounding makes many windows tie; the gradient must pick the first maximum, as flax's does.
    x = jnp.round(2.0 * jax.random.normal(jax.random.PRNGKey(0), x_shape))
    expected, expected_vjp = jax.vjp(lambda h: nn.max_pool(h, (2, 2), strides=(2, 2)), x)
    pooled, vjp = jax.vjp(max_pool_2x2, x)
    chex.assert_trees_all_equal(pooled, expected)
    g = jax.random.normal(jax.random.PRNGKey(1), expected.shape)
    chex.assert_trees_all_equal(vjp(g), expected_vjp(g))
    # Forward mode works too (custom_jvp, not custom_vjp).
    t = jax.random.normal(jax.random.PRNGKey(2), x_shape)
    chex.assert_trees_all_equal(
        jax.jvp(max_pool_2x2, (x,), (t,)),
        jax.jvp(lambda h: nn.max_pool(h, (2, 2), strides=(2, 2)), (x,), (t,)))


def test_max_pool_2x2_rejects_wrong_rank():
    with pytest.raises(DlxError, match="max_pool_2x2 expects"):
        max_pool_2x2(jnp.zeros((2, 4, 4)))


# Rank 3 and 4, odd and even sizes, one and three channels, with and without BatchNorm.
@pytest.mark.parametrize("batchnorm, x_shape", [(True, (4, 7, 7)), (False, (3, 32, 32, 3))])
def test_simple_cnn_equals_stock_flax_cnn(bench_cnn, batchnorm, x_shape):
    """Same params -> same logits and gradients in eval and train mode (same dropout key)."""
    model = SimpleCNN(num_outputs=10, use_batchnorm=batchnorm, hidden=32)
    stock = bench_cnn.StockCNN(num_outputs=10, use_batchnorm=batchnorm, hidden=32)
    # Digit-like inputs: a zero background makes the pools tie, a bump makes them differ.
    kx, ky, kinit, kdrop = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.nn.relu(jax.random.normal(kx, x_shape) - 0.5)
    y = jax.random.randint(ky, x_shape[:1], 0, 10)
    variables = jax.jit(model.init)(kinit, x)
    stock_x = x if x.ndim == 4 else x[..., None]
    stock_variables = jax.eval_shape(stock.init, kinit, stock_x)
    chex.assert_trees_all_equal_shapes(variables, stock_variables)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    # Random biases and BatchNorm scales/offsets make every term matter.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(treedef, [p + 0.1 * jax.random.normal(k, p.shape)
                                          for p, k in zip(leaves, keys)])

    def loss(module, train, params, batch_stats, x, y, key):
        out = module.apply({"params": params, "batch_stats": batch_stats}, x, train=train,
                           rngs={"dropout": key}, mutable=["batch_stats"])
        logits, updates = out
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), (logits, updates)

    grad = jax.jit(jax.grad(loss, argnums=2, has_aux=True), static_argnums=(0, 1))
    for train in (False, True):
        grads, (logits, updates) = grad(model, train, params, batch_stats, x, y, kdrop)
        stock_grads, (stock_logits, stock_updates) = grad(stock, train, params, batch_stats,
                                                          stock_x, y, kdrop)
        chex.assert_trees_all_close(logits, stock_logits, atol=1e-5, rtol=1e-5)
        chex.assert_trees_all_close(grads, stock_grads, atol=1e-5, rtol=1e-5)
        chex.assert_trees_all_close(updates, stock_updates, atol=1e-5, rtol=1e-5)


def test_benchmark_steps_run_at_tiny_shapes(bench_cnn):
    batch = bench_cnn.batch_of(2, 8, 8)
    for make in (bench_cnn.dlx_step, bench_cnn.stock_flax_step):
        step = make(batch, True)  # With BatchNorm: the variant with the most moving parts.
        losses = [step() for _ in range(3)]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], (make, losses)
    pytest.importorskip("torch", exc_type=ImportError)
    for batchnorm in (False, True):
        step = bench_cnn.torch_step(batch, batchnorm)
        assert np.isfinite(step())

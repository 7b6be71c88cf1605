"""The MLP, the classification task's loss and metric sums, and the pure train/eval steps."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlx import losses, tasks
from dlx.nn.mlp import MLP
from dlx.train import parallel, steps
from dlx.train.state import TrainState


def _batch(key, batch=16, features=40, classes=10):
    kx, ky = jax.random.split(key)
    return {"x": jax.random.normal(kx, (batch, features)),
            "y": jax.random.randint(ky, (batch,), 0, classes)}


def _state(task, tx, batch, seed=0):
    init_rng, rng = jax.random.split(jax.random.PRNGKey(seed))
    params, batch_stats = task.init(init_rng, batch)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      batch_stats=batch_stats, rng=rng)


@pytest.mark.parametrize("use_mask", [False, True])
def test_cross_entropy_matches_optax(use_mask):
    key = jax.random.PRNGKey(0)
    logits = 5 * jax.random.normal(key, (12, 7))
    labels = jax.random.randint(jax.random.PRNGKey(1), (12,), 0, 7)
    mask = jnp.arange(12) < 9 if use_mask else None
    reference = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    expected = reference[:9].mean() if use_mask else reference.mean()
    chex.assert_trees_all_close(losses.cross_entropy(logits, labels, mask), expected, rtol=1e-6)


def test_cross_entropy_is_finite_for_huge_logits():
    logits = jnp.array([[1e4, -1e4], [-1e4, 1e4]])
    assert jnp.isfinite(losses.cross_entropy(logits, jnp.array([1, 1])))


class MLPTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_and_param_count(self):
        model = MLP(features=(100, 100), num_outputs=10)
        x = jnp.ones((5, 40))
        params = model.init(jax.random.PRNGKey(0), x)["params"]
        logits = self.variant(lambda p, x: model.apply({"params": p}, x))(params, x)
        chex.assert_shape(logits, (5, 10))
        chex.assert_tree_all_finite(logits)
        count = sum(p.size for p in jax.tree.leaves(params))
        assert count == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10

    def test_no_hidden_layers_is_logistic_regression(self):
        model = MLP(features=(), num_outputs=10)
        params = model.init(jax.random.PRNGKey(0), jnp.ones((2, 4, 10)))["params"]
        assert list(params) == ["Dense_0"]
        assert params["Dense_0"]["kernel"].shape == (40, 10)

    def test_batchnorm_train_updates_stats_eval_uses_them(self):
        model = MLP(features=(8,), num_outputs=3, use_batchnorm=True)
        x = 3.0 + jax.random.normal(jax.random.PRNGKey(0), (64, 5))
        variables = model.init(jax.random.PRNGKey(1), x)
        _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
        mean = updates["batch_stats"]["BatchNorm_0"]["mean"]
        assert not np.allclose(mean, 0.0)
        out_a = model.apply(variables, x[:4])
        out_b = model.apply(variables, x[:4].at[0].set(100.0))
        chex.assert_trees_all_close(out_a[1:], out_b[1:])  # Eval mode: rows are independent.


def test_task_sums_count_only_real_rows():
    task = tasks.Classification(MLP(features=(16,), num_outputs=10))
    batch = _batch(jax.random.PRNGKey(0))
    params, stats = task.init(jax.random.PRNGKey(1), batch)
    masked = dict(batch, mask=jnp.arange(16) < 10)
    loss, (sums, _) = task.loss(params, stats, masked, jax.random.PRNGKey(2), train=False)
    _, (head_sums, _) = task.loss(params, stats, {k: v[:10] for k, v in batch.items()},
                                  jax.random.PRNGKey(2), train=False)
    chex.assert_trees_all_close(sums, head_sums, rtol=1e-6)
    assert sums["count"] == 10
    chex.assert_trees_all_close(loss, head_sums["loss"] / 10, rtol=1e-6)


def test_train_step_equals_a_hand_written_optax_update():
    task = tasks.Classification(MLP(features=(32,), num_outputs=10))
    tx = optax.adam(1e-2)
    batch = _batch(jax.random.PRNGKey(0))
    state = _state(task, tx, batch)
    new_state, sums = jax.jit(lambda s, b: steps.train_step(s, b, task=task, tx=tx))(state, batch)

    def loss(params):
        logits = task.model.apply({"params": params}, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    grads = jax.grad(loss)(state.params)
    updates, _ = tx.update(grads, tx.init(state.params), state.params)
    expected = optax.apply_updates(state.params, updates)
    chex.assert_trees_all_close(new_state.params, expected, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(sums["loss"] / sums["count"], loss(state.params), rtol=1e-6)
    assert int(new_state.step) == 1


def test_metric_sums_come_out_of_the_step_as_one_vector_with_the_same_values():
    task = tasks.Classification(MLP(features=(16,), num_outputs=10))
    batch = _batch(jax.random.PRNGKey(0))
    state = _state(task, optax.sgd(0.1), batch)
    sums = jax.jit(lambda s, b: steps.eval_step(s, b, task=task))(state, batch)
    stacked = jax.jit(lambda s, b: parallel.MetricSums.stack(steps.eval_step(s, b, task=task)))(
        state, batch)
    assert sorted(stacked.keys) == sorted(sums) and stacked.values.shape == (len(sums),)
    assert len(sums) == 33  # loss, correct, count and tp/pred/true of each of the 10 classes.
    assert stacked.to_host() == {key: float(value) for key, value in sums.items()}
    # Integer sums become float32, exactly below 2**24.
    assert parallel.MetricSums.stack({"count": jnp.int32(2**24 - 1)}).to_host() == {
        "count": 2**24 - 1}


def test_loss_falls_on_a_tiny_batch():
    task = tasks.Classification(MLP(features=(64,), num_outputs=10))
    tx = optax.adam(1e-2)
    batch = _batch(jax.random.PRNGKey(3), batch=32)
    state = _state(task, tx, batch)
    step = jax.jit(lambda s, b: steps.train_step(s, b, task=task, tx=tx))
    first = None
    for _ in range(100):
        state, sums = step(state, batch)
        first = first if first is not None else float(sums["loss"] / sums["count"])
    assert float(sums["loss"] / sums["count"]) < 0.1 * first


def test_dropout_key_depends_on_step_only():
    state = TrainState(step=jnp.array(3), params={}, opt_state=(), batch_stats={},
                       rng=jax.random.PRNGKey(0))
    same = steps.step_rng(state, None)
    chex.assert_trees_all_equal(same, steps.step_rng(state, None))
    assert not np.array_equal(same, steps.step_rng(state.replace(step=jnp.array(4)), None))


def test_residual_mlp_adds_the_input_of_equal_width_layers():
    model = MLP(features=(8, 8), num_outputs=3, residual=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    dense = lambda name, h: h @ params[name]["kernel"] + params[name]["bias"][None, :]
    h1 = jax.nn.relu(dense("Dense_0", x))  # 5 -> 8: widths differ, no skip.
    h2 = h1 + jax.nn.relu(dense("Dense_1", h1))
    chex.assert_trees_all_close(model.apply({"params": params}, x), dense("Dense_2", h2),
                                rtol=1e-6, atol=1e-6)
